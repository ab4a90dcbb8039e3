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
import re
from typing import Any, Mapping, Sequence
from urllib.parse import urlsplit, urlunsplit

_REQUEST_DOMAIN = b"runcomfy/request-fingerprint/v1\0"
_ACCOUNT_DOMAIN = b"runcomfy/account-fingerprint/v1\0"
_DIGEST = re.compile(r"^[0-9a-f]{64}$")
# A data URI's header ends at its first comma; it is short ("data:image/png;base64"),
# so the comma is looked for only near the start instead of across megabytes.
_HEADER_LIMIT = 128


def image_digest(data: bytes) -> str:
    """SHA-256 (hex) of an image's bytes: the one hash used for input and result files."""
    return hashlib.sha256(data).hexdigest()


def is_digest(value: object) -> bool:
    """Whether ``value`` is spelled as ``image_digest`` spells digests (64 lowercase hex)."""
    return isinstance(value, str) and _DIGEST.match(value) is not None


def _data_uri_header(value: str) -> str | None:
    """``data:<mime>;base64`` of a base64 data URI, else None (hosted URLs, plain text)."""
    if not value.startswith("data:"):
        return None
    comma = value.find(",", 0, _HEADER_LIMIT)
    if comma < 0 or not value[:comma].lower().endswith(";base64"):
        return None
    return value[:comma].lower()


def _inline_image(value: str, header: str, digest: str | None) -> dict[str, str]:
    if digest is None:
        payload = value[len(header) + 1 :]
        try:
            digest = image_digest(base64.b64decode(payload))
        except (binascii.Error, ValueError):
            # Not valid base64: RunComfy will refuse it anyway; hash the text so the
            # fingerprint never stops a run (and never equals a valid image's).
            return {"data": header, "text_sha256": hashlib.sha256(payload.encode()).hexdigest()}
    return {"data": header, "sha256": digest}


def _canonical(value: Any) -> Any:
    """The value with every base64 data URI replaced by its media type and digest."""
    if isinstance(value, str):
        header = _data_uri_header(value)
        return value if header is None else _inline_image(value, header, None)
    if isinstance(value, Mapping):
        return {str(key): _canonical(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(item) for item in value]
    return value


def _canonical_image_urls(urls: Any, digests: Sequence[str | None]) -> list[Any]:
    if not isinstance(urls, (list, tuple)) or len(urls) != len(digests):
        count = len(urls) if isinstance(urls, (list, tuple)) else 0
        raise ValueError(f"image_digests has {len(digests)} entries but image_urls has {count}; pass one per URL")
    canonical: list[Any] = []
    for index, (url, digest) in enumerate(zip(urls, digests)):
        header = _data_uri_header(url) if isinstance(url, str) else None
        if header is None:
            if digest is not None:
                raise ValueError(f"image_digests[{index}] is given but image_urls[{index}] is not an inline image")
            canonical.append(_canonical(url))
            continue
        if digest is not None and not is_digest(digest):
            raise ValueError(f"image_digests[{index}] is not a lowercase hex SHA-256 digest")
        canonical.append(_inline_image(url, header, digest))
    return canonical


def request_fingerprint(
    model_id: str, body: Mapping[str, Any], *, image_digests: Sequence[str | None] | None = None
) -> str:
    """Hex SHA-256 of the model id and the request body exactly as it will be sent.

    Key order does not matter; every value does (``5`` and ``5.0`` differ, as
    they differ on the wire). Compute it over the final body, after defaults
    are filled in, or an omitted default and an explicit one would differ.

    ``image_digests``, if given, has one entry per ``body["image_urls"]`` item:
    the ``image_digest`` of the inline image's raw bytes, or None for a hosted
    URL (or to let this function decode that URI). Callers that encoded the
    images themselves pass it, so twenty 6 MiB images are not base64-decoded a
    second time just to be hashed; the digests are trusted, not re-checked.
    Inline images outside ``image_urls`` are always decoded and hashed here.
    """
    if image_digests is None or ("image_urls" not in body and not image_digests):
        canonical = _canonical(body)
    else:
        canonical = _canonical({key: value for key, value in body.items() if key != "image_urls"})
        canonical["image_urls"] = _canonical_image_urls(body.get("image_urls"), image_digests)
    text = json.dumps(
        {"model": model_id, "body": canonical},
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
