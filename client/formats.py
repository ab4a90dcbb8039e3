"""The image formats this pack meets, in one table.

Used wherever bytes are recognised or named: result downloads (is this an
image at all?), decoding (which Pillow plugins may open a result), inline
inputs (which MIME types a data URI may carry) and the command line (which
extension a written file gets).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class ImageFormat:
    """One format. ``inline``: the model accepts it as an input data URI.
    ``result``: RunComfy renders it (an ``output_format``), so a result may be one."""

    name: str
    mime: str
    pillow: str | None
    extension: str
    inline: bool
    result: bool

    def matches(self, head: bytes) -> bool:
        """Whether ``head`` (the first 16 bytes or more) starts a file of this format."""
        return _SIGNATURES[self.name](head)

    def complete(self, data: bytes) -> bool:
        """Whether a file of this format has its end: a cut-off download is never
        decoded, whatever Pillow's ``LOAD_TRUNCATED_IMAGES`` says."""
        ends = _ENDINGS.get(self.name)
        return ends is None or ends(data)


PNG = ImageFormat("png", "image/png", "PNG", "png", inline=True, result=True)
JPEG = ImageFormat("jpeg", "image/jpeg", "JPEG", "jpg", inline=True, result=True)
WEBP = ImageFormat("webp", "image/webp", "WEBP", "webp", inline=True, result=True)
HEIC = ImageFormat("heic", "image/heic", None, "heic", inline=True, result=False)
HEIF = ImageFormat("heif", "image/heif", None, "heif", inline=True, result=False)
GIF = ImageFormat("gif", "image/gif", "GIF", "gif", inline=False, result=False)
FORMATS: tuple[ImageFormat, ...] = (PNG, JPEG, WEBP, HEIC, HEIF, GIF)

_SIGNATURES = {
    "png": lambda head: head.startswith(b"\x89PNG\r\n\x1a\n"),
    "jpeg": lambda head: head.startswith(b"\xff\xd8\xff"),
    "webp": lambda head: head[:4] == b"RIFF" and head[8:12] == b"WEBP",
    "heic": lambda head: head[4:8] == b"ftyp" and head[8:12] in (b"heic", b"heix", b"heim", b"heis"),
    "heif": lambda head: head[4:8] == b"ftyp" and head[8:12] in (b"mif1", b"msf1", b"heif"),
    "gif": lambda head: head[:6] in (b"GIF87a", b"GIF89a"),
}

_ENDINGS = {
    # The IEND chunk; the End Of Image marker (0xFF never occurs unescaped in
    # JPEG's coded data, some writers pad after it); the RIFF length.
    "png": lambda data: data.rfind(b"IEND\xaeB`\x82", -1024) != -1,
    "jpeg": lambda data: data.rfind(b"\xff\xd9", -1024) != -1,
    "webp": lambda data: len(data) >= 12 and int.from_bytes(data[4:8], "little") + 8 <= len(data),
}

RESULT_FORMATS = tuple(f for f in FORMATS if f.result)
INLINE_FORMATS = tuple(f for f in FORMATS if f.inline)


def sniff(data: bytes) -> ImageFormat | None:
    """The format the first bytes announce, or None if they are no image we know."""
    head = data[:16]
    return next((f for f in FORMATS if f.matches(head)), None)


def by_output_format(output_format: str) -> ImageFormat:
    """The format of a model's ``output_format`` value (``png``, ``jpeg``, ``webp``)."""
    return next(f for f in RESULT_FORMATS if f.name == output_format)


_DIGEST = re.compile(r"^[0-9a-f]{64}$")


def image_digest(data: bytes) -> str:
    """SHA-256 (hex) of an image file's bytes: the one identity of input and result files."""
    return hashlib.sha256(data).hexdigest()


def is_digest(value: object) -> bool:
    """Whether ``value`` is spelled as ``image_digest`` spells digests (64 lowercase hex)."""
    return isinstance(value, str) and _DIGEST.match(value) is not None
