"""One job's request, checked once and serialised once.

Inline images travel as ``InlineImage`` (their encoded bytes) until the body
is written, so multi-megabyte payloads are base64-encoded straight into the
body's bytes: no data-URI strings, no JSON-escaped copies.
"""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass, field
from typing import Any, Hashable, Mapping

from ..errors import RequestValidationError
from ..limits import MAX_BODY_BYTES, MIB
from ..ledger.fingerprint import request_fingerprint
from .schemas import InlineImage, get_schema


@dataclass(frozen=True)
class JobRequest:
    """A model id and inputs that passed the schema, and the body that will be sent."""

    model_id: str
    inputs: Mapping[str, Any]
    body: bytes = field(repr=False)

    @classmethod
    def checked(cls, model_id: str, inputs: Mapping[str, Any], *, local_api: bool = False) -> "JobRequest":
        """The one pre-submit gate for inputs: schema and the pack's rules, then body size.
        Sends nothing. ``local_api``: see ``ModelSchema.issues``."""
        get_schema(model_id).check(inputs, local_api=local_api)
        body = _serialise(inputs)
        if len(body) > MAX_BODY_BYTES:
            raise RequestValidationError(
                f"The request is {len(body) / MIB:.0f} MiB, over RunComfy's {MAX_BODY_BYTES // MIB} MiB "
                "limit; use fewer or smaller input images",
                field="image_urls",
            )
        return cls(model_id, inputs, body)

    @property
    def fingerprint(self) -> str:
        """What makes two runs "the same" for the journal: every field, defaults filled in."""
        return request_fingerprint(self.model_id, {**get_schema(self.model_id).defaults(), **self.inputs})

    @property
    def kind(self) -> Hashable:
        """Jobs of one kind take about as long: same model, resolution and image count."""
        defaults = get_schema(self.model_id).defaults()
        return (self.model_id, *(self.inputs.get(name, defaults.get(name)) for name in ("resolution", "num_images")))


def _serialise(inputs: Mapping[str, Any]) -> bytes:
    """Compact JSON with each ``InlineImage`` written as its data URI, base64 spliced in as bytes."""
    images: list[InlineImage] = []
    nonce = secrets.token_hex(8)  # so no user text can look like a placeholder

    def placeholder(value: Any) -> Any:
        if isinstance(value, InlineImage):
            images.append(value)
            return f"{nonce}:{len(images) - 1}"
        return value

    plain = {
        name: [placeholder(item) for item in value] if isinstance(value, list) else placeholder(value)
        for name, value in inputs.items()
    }
    rest = json.dumps(plain, separators=(",", ":"))
    parts: list[bytes] = []
    for index, image in enumerate(images):
        before, rest = rest.split(f'"{nonce}:{index}"', 1)
        parts += [before.encode("ascii"), f'"data:{image.mime};base64,'.encode("ascii"),
                  base64.b64encode(image.data), b'"']
    parts.append(rest.encode("ascii"))
    return b"".join(parts)
