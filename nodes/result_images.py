"""Result files → one float32 ComfyUI IMAGE batch, as ComfyUI's LoadImage builds it.

Each download is opened once, as it arrives (``inspect_result`` reads only its
header, so a bad file fails at once), and decoded once, later, straight into
its slice of one preallocated batch (``decode_into``): no uint8 or float copy
of a frame ever exists. Results of different sizes are padded (centred,
black), never resampled, with a note per padded frame.

Pure, synchronous functions without ComfyUI or HTTP imports; the node runs
them on its worker pool (``workers.py``).
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from ..client.formats import RESULT_FORMATS, sniff

# Results are at most ~17 MP (4K); 4x that is still plausible, more is a
# decompression bomb. Kept below Pillow's own warning threshold (89 MP).
MAX_RESULT_PIXELS = 8192 * 8192
# Only the plugins a result can be in: less attack surface than letting Pillow
# try its ~40 formats on downloaded bytes.
_PILLOW_FORMATS = tuple(f.pillow for f in RESULT_FORMATS if f.pillow)
# Four 4K results are under 1 GiB as float32; room for mixed sizes, but a
# batch padded beyond this is refused rather than allocated.
MAX_BATCH_BYTES = 2 * 1024**3
_EXIF_ORIENTATION = 0x0112
_QUARTER_TURNS = (5, 6, 7, 8)  # orientations that swap width and height
# Decoded rows are converted to float in strips of about this many bytes:
# small enough to stay in cache and to be no memory to speak of (Pillow's
# tobytes briefly holds each strip twice).
_STRIP_BYTES = 1 << 18


@dataclass(frozen=True)
class ResultImage:
    """A downloaded result, opened (header read, pixels not yet decoded)."""

    image: Image.Image = field(repr=False)
    width: int  # upright, i.e. after EXIF orientation
    height: int


def inspect_result(data: bytes) -> ResultImage:
    """Open a download, refusing non-images, broken headers and decompression bombs.

    The upright size is known without decoding: JPEG and WebP carry EXIF in
    their header, and a PNG's ``eXIf`` chunk, which may follow the pixels, is
    found by walking the chunk list.
    """
    try:
        image = Image.open(io.BytesIO(data), formats=_PILLOW_FORMATS)
    except UnidentifiedImageError:
        raise ValueError(f"result is not an image ({_describe_bytes(data)})") from None
    except Image.DecompressionBombError as error:
        raise ValueError(f"result image is implausibly large: {error}") from None
    except (OSError, SyntaxError, ValueError, struct.error) as error:
        raise ValueError(f"result image header is corrupt: {error}") from None
    width, height = image.size
    if width * height > MAX_RESULT_PIXELS:
        image.close()
        limit = f"{MAX_RESULT_PIXELS / 1e6:.0f} MP"
        raise ValueError(f"result image is {width}×{height}, larger than {limit}; refusing to decode it")
    exif = Image.Exif()
    if image.format == "PNG":
        exif.load(_png_exif(data) or b"")
    else:
        exif = image.getexif()
    if exif.get(_EXIF_ORIENTATION, 1) in _QUARTER_TURNS:
        width, height = height, width
    return ResultImage(image, width, height)


def new_batch(results: Sequence[ResultImage]) -> tuple[torch.Tensor, list[np.ndarray], tuple[str, ...]]:
    """The IMAGE batch [B, H, W, 3] float32 for these results, each one's slot in it, and padding notes."""
    if not results:
        raise ValueError("no result images to convert")
    height = max(result.height for result in results)
    width = max(result.width for result in results)
    same_size = all((result.height, result.width) == (height, width) for result in results)
    size = len(results) * height * width * 3 * 4
    if size > MAX_BATCH_BYTES:
        raise ValueError(
            f"{len(results)} results padded to {width}×{height} would make a {size / 1024**3:.1f} GiB IMAGE "
            f"batch, over the {MAX_BATCH_BYTES / 1024**3:.0f} GiB this pack allocates"
        )
    batch = (torch.empty if same_size else torch.zeros)((len(results), height, width, 3), dtype=torch.float32)
    slots, notes = [], []
    for index, result in enumerate(results):
        h, w = result.height, result.width
        top, left = (height - h) // 2, (width - w) // 2
        slots.append(batch[index, top : top + h, left : left + w].numpy())
        if (h, w) != (height, width):
            notes.append(f"result {index + 1} is {w}×{h}, padded to {width}×{height}")
    return batch, slots, tuple(notes)


def decode_into(result: ResultImage, target: np.ndarray) -> None:
    """Decode one result into ``target`` (its float32 [h, w, 3] slot) as ``x / 255``,
    the values of ComfyUI's LoadImage: EXIF orientation applied, 16-bit samples
    scaled (not clipped), transparency flattened onto black (an IMAGE has no
    alpha; the colour under transparent pixels is arbitrary, black matches the
    padding)."""
    image = result.image
    where = f"{image.format} image {image.width}×{image.height}"
    try:
        image.load()
        ImageOps.exif_transpose(image, in_place=True)
    except (OSError, SyntaxError, ValueError) as error:
        raise ValueError(f"result {where} is truncated or corrupt: {error}") from None
    if image.size != (target.shape[1], target.shape[0]):
        raise ValueError(f"result {where} decoded to {image.width}×{image.height}, not the size its header announced")
    if image.mode != "RGB" or "transparency" in image.info:
        np.divide(_to_rgb_array(image), 255.0, out=target, dtype=np.float32)
        return
    width, height = image.size
    rows = max(1, _STRIP_BYTES // (width * 3))
    for top in range(0, height, rows):
        bottom = min(height, top + rows)
        strip = image.crop((0, top, width, bottom)).tobytes()
        pixels = np.frombuffer(strip, np.uint8).reshape(bottom - top, width, 3)
        np.divide(pixels, 255.0, out=target[top:bottom], dtype=np.float32)
        del strip, pixels  # before the next strip exists


def results_to_tensor(results: Sequence[ResultImage]) -> tuple[torch.Tensor, tuple[str, ...]]:
    """``new_batch`` and ``decode_into`` for every result, one after another."""
    batch, slots, notes = new_batch(results)
    for result, slot in zip(results, slots):
        decode_into(result, slot)
    return batch, notes


def _png_exif(data: bytes) -> bytes | None:
    """The body of a PNG's ``eXIf`` chunk wherever it is, by walking chunk headers only."""
    at = 8
    while at + 8 <= len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind = data[at + 4 : at + 8]
        if kind == b"eXIf":
            return data[at + 8 : at + 8 + length]
        if kind == b"IEND":
            return None
        at += 12 + length
    return None


def _to_rgb_array(image: Image.Image) -> np.ndarray:
    """Any Pillow mode → uint8 [H, W, 3], flattening alpha onto black."""
    if image.mode.startswith("I;16") or image.mode == "I":  # 16-bit grayscale PNG
        wide = np.asarray(image).astype(np.uint32).clip(0, 65535)
        gray = ((wide * 255 + 32767) // 65535).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    if not has_alpha:
        return np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
    rgba = np.asarray(image if image.mode == "RGBA" else image.convert("RGBA"))
    alpha = rgba[..., 3:].astype(np.uint16)
    return ((rgba[..., :3] * alpha + 127) // 255).astype(np.uint8)


def _describe_bytes(data: bytes) -> str:
    """Say what a non-image download looks like: usually an error page or an API error body."""
    if not data:
        return "the download was empty"
    kind = sniff(data)
    if kind is not None and kind.result:
        return f"a {kind.name.upper()} file whose header is corrupt"
    if kind is not None:
        return f"a {kind.name.upper()} file; results are {', '.join(f.name.upper() for f in RESULT_FORMATS)}"
    head = data[:200].lstrip()
    text = head.decode("utf-8", "replace")
    preview = " ".join(text.split())[:60]
    lowered = head[:100].lower()
    if lowered.startswith((b"<!doctype html", b"<html")) or b"<html" in lowered:
        return f"looks like HTML: {preview!r}"
    if head[:1] in (b"{", b"["):
        return f"looks like JSON: {preview!r}"
    if head[:1] == b"<":
        return f"looks like XML: {preview!r}"
    if all(32 <= byte < 127 or byte in (9, 10, 13) for byte in head):
        return f"looks like text: {preview!r}"
    return f"{len(data)} bytes starting with {data[:8].hex(' ')}"
