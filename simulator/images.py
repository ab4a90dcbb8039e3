"""Deterministic stand-ins for Nano Banana 2 outputs.

The client decodes, sizes and converts what it downloads, so the simulator must
return real image files with the sizes Gemini's image models produce, in the
requested format. The content is "photo-like" (smooth colour fields plus fine
texture) rather than flat, so compression ratios, download sizes and decode
times resemble real outputs. Everything is a pure function of the inputs, so a
test can render the same image twice and compare bytes.
"""

from __future__ import annotations

import hashlib
import io
import math
import struct
import zlib
from typing import Iterable

import numpy as np
from PIL import Image, ImageChops, ImageOps

# Gemini 3.1 Flash Image output sizes at 1K, by aspect ratio (width, height).
# 0.5K is half of these, 2K double, 4K four times (16:9 at 2K = 2752x1536).
SIZES_1K: dict[str, tuple[int, int]] = {
    "1:1": (1024, 1024),
    "2:3": (848, 1264),
    "3:2": (1264, 848),
    "3:4": (896, 1200),
    "4:3": (1200, 896),
    "4:5": (928, 1152),
    "5:4": (1152, 928),
    "9:16": (768, 1376),
    "16:9": (1376, 768),
    "21:9": (1584, 672),
}
SCALE: dict[str, float] = {"0.5K": 0.5, "1K": 1.0, "2K": 2.0, "4K": 4.0}
FORMATS: dict[str, tuple[str, str, str]] = {
    # output_format -> (Pillow format, file extension, Content-Type)
    "png": ("PNG", "png", "image/png"),
    "jpeg": ("JPEG", "jpg", "image/jpeg"),
    "webp": ("WEBP", "webp", "image/webp"),
}
DEFECTS = ("gif", "corrupt_png", "corrupt_jpeg", "huge_png", "truncated_image")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def nearest_ratio(width: int, height: int) -> str:
    """The supported aspect ratio closest to ``width:height``.

    Compared on a log scale so that 2:1 and 1:2 are equally far from 1:1, which
    is how "auto" behaves for an edit: the output keeps the input's shape.
    """
    target = math.log(width / height)
    return min(SIZES_1K, key=lambda r: abs(math.log(SIZES_1K[r][0] / SIZES_1K[r][1]) - target))


def expected_size(
    aspect_ratio: str, resolution: str, first_input_size: tuple[int, int] | None = None
) -> tuple[int, int]:
    """The (width, height) the simulator renders for these inputs.

    ``auto`` means 1:1 for text-to-image (no input) and the ratio nearest the
    first input image for an edit. Public so tests can assert exact sizes.
    """
    if aspect_ratio == "auto":
        aspect_ratio = nearest_ratio(*first_input_size) if first_input_size else "1:1"
    if aspect_ratio not in SIZES_1K:
        raise ValueError(f"unsupported aspect_ratio {aspect_ratio!r}")
    if resolution not in SCALE:
        raise ValueError(f"unsupported resolution {resolution!r}")
    width, height = SIZES_1K[aspect_ratio]
    scale = SCALE[resolution]
    return int(width * scale), int(height * scale)


def render_seed(prompt: str, seed: int, index: int, input_digests: Iterable[str]) -> int:
    """A 64-bit RNG seed from everything that should change the picture."""
    hasher = hashlib.sha256()
    for part in (prompt, str(seed), str(index), *input_digests):
        hasher.update(part.encode("utf-8"))
        hasher.update(b"\0")
    return int.from_bytes(hasher.digest()[:8], "big")


def _colour_field(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """Smooth colour regions: a small random palette grid, upsampled bicubically."""
    base_hue = rng.random(3) * 200 + 30
    grid_w, grid_h = int(rng.integers(6, 13)), int(rng.integers(6, 13))
    grid = base_hue + rng.normal(0, 45, size=(grid_h, grid_w, 3))
    small = Image.fromarray(np.clip(grid, 0, 255).astype(np.uint8), "RGB")
    return small.resize((width, height), Image.Resampling.BICUBIC)


_GRAIN_AMPLITUDE = 12
_GRAIN_BAND = 8


def _add_texture(rng: np.random.Generator, image: Image.Image) -> Image.Image:
    """Add a brushed grain that varies per pixel across and per band of rows down.

    Per-pixel random noise is what real photos have, but it makes a 4K PNG take
    seconds to deflate. Grain that repeats for 8 rows looks like fine texture,
    yet PNG's "Up" filter turns it into near-zero rows, so encoding stays fast.
    """
    width, height = image.size
    bands = rng.integers(0, _GRAIN_AMPLITUDE, size=(height // _GRAIN_BAND + 1, width), dtype=np.uint8)
    grain = Image.fromarray(np.ascontiguousarray(np.repeat(bands, _GRAIN_BAND, axis=0)[:height]), "L")
    return ImageChops.add(image, Image.merge("RGB", (grain, grain, grain)), 1.0, -(_GRAIN_AMPLITUDE // 2))


def render(
    width: int,
    height: int,
    *,
    rng_seed: int,
    output_format: str,
    base: Image.Image | None = None,
) -> bytes:
    """Encode one deterministic image of exactly ``width`` x ``height``.

    With ``base`` (the first input of an edit), the output is that image,
    cropped to the output's shape and blended with a generated tint, so a test
    can tell that the input really reached the "model".
    """
    rng = np.random.default_rng(rng_seed)
    field = _colour_field(rng, width, height)
    if base is not None:
        fitted = ImageOps.fit(base.convert("RGB"), (width, height), Image.Resampling.BILINEAR)
        field = Image.blend(fitted, field, 0.3)
    image = _add_texture(rng, field)
    pil_format, _, _ = FORMATS[output_format]
    out = io.BytesIO()
    if pil_format == "PNG":
        image.save(out, pil_format, compress_level=1)
    elif pil_format == "JPEG":
        image.save(out, pil_format, quality=90)
    else:
        image.save(out, pil_format, quality=85, method=0)
    return out.getvalue()


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def defective(kind: str, good: bytes) -> bytes:
    """Bytes that pass for an image file at a glance (signature, Content-Type,
    length) but that no careful client may hand on as a result. ``good`` is
    the real render, used by ``truncated_image``."""
    if kind == "truncated_image":
        return good[: len(good) // 2]
    if kind == "huge_png":  # a well-formed header announcing 10^10 pixels
        header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
        return (_PNG_SIGNATURE + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", zlib.compress(b""))
                + _png_chunk(b"IEND", b""))
    small = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 40, 40)).save(small, {"gif": "GIF", "corrupt_png": "PNG", "corrupt_jpeg": "JPEG"}[kind])
    data = small.getvalue()
    if kind == "corrupt_png":  # the header's width overwritten: its CRC no longer matches
        return data[:16] + b"\xff" * 4 + data[20:]
    if kind == "corrupt_jpeg":  # the JFIF header and the start of the tables zeroed
        return data[:4] + bytes(60) + data[64:]
    return data  # a real GIF, served where a PNG, JPEG or WebP was asked for
