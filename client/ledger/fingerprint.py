"""Stable identities for "the same request" and "the same account", kept in the job journal.

A request fingerprint decides whether a run may reuse a job already paid for,
so it covers every field that reaches RunComfy, the seed included: another
seed is another picture. Inline images (``data:image/...;base64,...`` URIs)
are represented by the SHA-256 of their decoded bytes, so the fingerprint
does not depend on how base64 was wrapped and the journal never holds image
data; hosted images are represented by their URL string.

Both hashes are domain-separated SHA-256 and stable across processes and
machines, unlike ``Settings.account_fingerprint`` (salted per process, for
ComfyUI's ``IS_CHANGED``, which ends up in PNG metadata). The account
fingerprint is therefore only ever written to the local journal.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any, Mapping
from urllib.parse import urlsplit, urlunsplit

from ..formats import image_digest
from ..model.schemas import InlineImage

_REQUEST_DOMAIN = b"runcomfy/request-fingerprint/v1\0"
_ACCOUNT_DOMAIN = b"runcomfy/account-fingerprint/v1\0"
# A data URI's header ends at its first comma; it is short ("data:image/png;base64"),
# so the comma is looked for only near the start instead of across megabytes.
_HEADER_LIMIT = 128


def _data_uri_header(value: str) -> str | None:
    """``data:<mime>;base64`` of a base64 data URI, else None (hosted URLs, plain text)."""
    if not value.startswith("data:"):
        return None
    comma = value.find(",", 0, _HEADER_LIMIT)
    if comma < 0 or not value[:comma].lower().endswith(";base64"):
        return None
    return value[:comma].lower()


def _inline_image(value: str, header: str) -> dict[str, str]:
    payload = value[len(header) + 1 :]
    try:
        return {"data": header, "sha256": image_digest(base64.b64decode(payload))}
    except (binascii.Error, ValueError):
        # Not valid base64: RunComfy will refuse it anyway; hash the text so the
        # fingerprint never stops a run (and never equals a valid image's).
        return {"data": header, "text_sha256": hashlib.sha256(payload.encode()).hexdigest()}


def _canonical(value: Any) -> Any:
    """The value with every inline image replaced by its media type and digest."""
    if isinstance(value, InlineImage):
        return {"data": f"data:{value.mime};base64", "sha256": value.digest}
    if isinstance(value, str):
        header = _data_uri_header(value)
        return value if header is None else _inline_image(value, header)
    if isinstance(value, Mapping):
        return {str(key): _canonical(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(item) for item in value]
    return value


def request_fingerprint(model_id: str, body: Mapping[str, Any]) -> str:
    """Hex SHA-256 of the model id and the request body exactly as it will be sent.

    Key order does not matter; every value does (``5`` and ``5.0`` differ, as
    they differ on the wire). Compute it over the final body, after defaults
    are filled in, or an omitted default and an explicit one would differ.
    An ``InlineImage`` counts by the digest it already holds, so twenty 6 MiB
    images are not hashed again; a data URI given as text is decoded here.
    """
    text = json.dumps(
        {"model": model_id, "body": _canonical(body)},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )
    return hashlib.sha256(_REQUEST_DOMAIN + text.encode("utf-8")).hexdigest()


def account_fingerprint(base_url: str, token: str) -> str:
    """A stable, one-way 128-bit hex id of (API base URL, token); reveals nothing of the token.

    Journal entries are kept per account: the same inputs under another token
    (or against the simulator instead of RunComfy) are another entry.
    """
    if not token:
        raise ValueError("account_fingerprint needs the API token")
    parts = urlsplit(base_url.strip())
    normal = urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path.rstrip("/"), "", ""))
    message = _ACCOUNT_DOMAIN + normal.encode("utf-8") + b"\0" + token.encode("utf-8")
    return hashlib.sha256(message).hexdigest()[:32]
