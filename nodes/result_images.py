"""Result files → one float32 ComfyUI IMAGE batch, as ComfyUI's LoadImage builds it.

Downloads are checked as they arrive and decoded straight into their slice of
one preallocated batch; results of different sizes are padded (centred, black),
never resampled, with a note per padded frame.

Pure, synchronous functions without ComfyUI or HTTP imports, called through
``asyncio.to_thread`` (Pillow decoding and numpy ufuncs release the GIL).
"""

from __future__ import annotations

import contextlib
import io
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError


# Results are at most ~17 MP (4K); 4x that is still plausible, more is a
# decompression bomb. Kept below Pillow's own warning threshold (89 MP).
MAX_RESULT_PIXELS = 8192 * 8192
# Only the plugins a result can plausibly use (JPEG covers MPO): less attack
# surface than letting Pillow try its ~40 formats on downloaded bytes.
RESULT_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP")
_EXIF_ORIENTATION = 0x0112
_QUARTER_TURNS = (5, 6, 7, 8)  # orientations that swap width and height
# Decoded rows are converted to float in strips of about this many bytes:
# small enough to stay in cache and to be no memory to speak of.
_STRIP_BYTES = 1 << 20


def decode_image(data: bytes) -> np.ndarray:
    """Decode a result file (PNG/JPEG/WebP/...) to an upright uint8 RGB array [H, W, 3].

    EXIF orientation is applied, 16-bit samples are scaled (not clipped) to 8
    bits, and transparency is flattened onto black, i.e. colour premultiplied
    by alpha: the colour stored under transparent pixels is arbitrary (often
    garbage), black makes it deterministic and matches the padding canvas of
    ``images_to_tensor``. An IMAGE has no alpha, so it cannot be kept.
    """
    with _open_result(data) as image, _reading(image):
        image.load()
        ImageOps.exif_transpose(image, in_place=True)
        return _to_rgb_array(image)


def _open_result(data: bytes) -> Image.Image:
    """Open a result file (its header only), refusing non-images, broken headers and bombs."""
    try:
        image = Image.open(io.BytesIO(data), formats=RESULT_FORMATS)
    except UnidentifiedImageError:
        raise ValueError(f"result is not an image ({_describe_bytes(data)})") from None
    except Image.DecompressionBombError as error:
        raise ValueError(f"result image is implausibly large: {error}") from None
    except (OSError, SyntaxError, ValueError) as error:  # a known format whose header is broken
        raise ValueError(f"result image header is corrupt: {error}") from None
    width, height = image.size
    if width * height > MAX_RESULT_PIXELS:
        image.close()
        limit = f"{MAX_RESULT_PIXELS / 1e6:.0f} MP"
        raise ValueError(f"result image is {width}×{height}, larger than {limit}; refusing to decode it")
    return image


@contextlib.contextmanager
def _reading(image: Image.Image) -> Iterator[None]:
    """Turn any failure while decoding the pixels into one clear ValueError."""
    where = f"{image.format} image {image.width}×{image.height}"
    try:
        yield
    except (OSError, SyntaxError, ValueError) as error:
        raise ValueError(f"result {where} is truncated or corrupt: {error}") from None


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


def images_to_tensor(frames: Sequence[np.ndarray]) -> tuple[torch.Tensor, tuple[str, ...]]:
    """Stack uint8 [H, W, 3] results into one IMAGE batch [B, H, W, 3] float32.

    Values are ``np.float32(x) / 255.0``, bit-identical to ComfyUI's LoadImage.
    The output is allocated once and each frame is converted straight into its
    slice, so no intermediate float copies exist. Frames smaller than the
    largest width/height are centred on black rather than resampled; a note
    per padded frame says so.
    """
    if not frames:
        raise ValueError("no result images to convert")
    for index, frame in enumerate(frames, start=1):
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"result {index} must be a uint8 [H, W, 3] array, got {frame.dtype} {list(frame.shape)}")
    height = max(frame.shape[0] for frame in frames)
    width = max(frame.shape[1] for frame in frames)
    same_size = all(frame.shape[:2] == (height, width) for frame in frames)
    allocate = torch.empty if same_size else torch.zeros
    batch = allocate((len(frames), height, width, 3), dtype=torch.float32)
    notes = []
    for index, frame in enumerate(frames):
        h, w = frame.shape[:2]
        top, left = (height - h) // 2, (width - w) // 2
        target = batch[index, top : top + h, left : left + w].numpy()
        np.divide(frame, 255.0, out=target, dtype=np.float32)
        if (h, w) != (height, width):
            notes.append(f"result {index + 1} is {w}×{h}, padded to {width}×{height}")
    return batch, tuple(notes)


@dataclass(frozen=True)
class ResultImage:
    """A downloaded result whose header was checked; its pixels are decoded later,
    straight into the IMAGE batch (see ``results_to_tensor``)."""

    data: bytes = field(repr=False)
    width: int  # upright, i.e. after EXIF orientation when the header tells it
    height: int


def inspect_result(data: bytes) -> ResultImage:
    """Check that a download is an image of a sane size, reading only its header.

    Raises the same ``ValueError`` as ``decode_image`` for non-images, broken
    headers and decompression bombs, so a bad file fails as soon as it arrives.
    """
    with _open_result(data) as image:
        width, height = image.size
        # JPEG and WebP carry EXIF in the header. A PNG's may follow the pixels;
        # reading it would decode the image now, so it is assumed absent here
        # and ``results_to_tensor`` copes if decoding proves otherwise.
        if image.format != "PNG" or "exif" in image.info:
            if image.getexif().get(_EXIF_ORIENTATION, 1) in _QUARTER_TURNS:
                width, height = height, width
    return ResultImage(data, width, height)


def results_to_tensor(results: Sequence[ResultImage]) -> tuple[torch.Tensor, tuple[str, ...]]:
    """Decode results straight into one IMAGE batch [B, H, W, 3] float32.

    The same values, padding and notes as ``images_to_tensor(decode_image(...))``,
    but without a uint8 copy of every frame: the batch is allocated once from
    the header sizes and each frame is converted into its slice in row strips
    while its decoded pixels are still in cache. Frames are decoded on up to
    one thread per core (Pillow and numpy release the GIL), which also bounds
    how many decoded images are held at once; peak memory stays close to the
    batch itself.
    """
    if not results:
        raise ValueError("no result images to convert")
    height = max(result.height for result in results)
    width = max(result.width for result in results)
    same_size = all((result.height, result.width) == (height, width) for result in results)
    allocate = torch.empty if same_size else torch.zeros
    batch = allocate((len(results), height, width, 3), dtype=torch.float32)
    notes = []
    slots = []
    for index, result in enumerate(results):
        h, w = result.height, result.width
        top, left = (height - h) // 2, (width - w) // 2
        slots.append(batch[index, top : top + h, left : left + w].numpy())
        if (h, w) != (height, width):
            notes.append(f"result {index + 1} is {w}×{h}, padded to {width}×{height}")

    try:
        _decode_all([result.data for result in results], slots)
    except _UnexpectedOrientation:  # an EXIF rotation only visible after decoding
        batch = slots = None  # let the first attempt go before the general path
        return images_to_tensor([decode_image(result.data) for result in results])
    return batch, tuple(notes)


def _decode_all(files: Sequence[bytes], slots: Sequence[np.ndarray]) -> None:
    """Decode each file into its slot, on up to one thread per core."""
    workers = min(len(files), os.cpu_count() or 1)
    if workers == 1:
        for data, slot in zip(files, slots):
            _decode_into(data, slot)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="runcomfy-decode") as pool:
        list(pool.map(_decode_into, files, slots))


class _UnexpectedOrientation(Exception):
    """A frame decoded to another shape than its header announced."""


def _decode_into(data: bytes, target: np.ndarray) -> None:
    """Decode one result into ``target`` (a float32 [h, w, 3] view) as ``x / 255``."""
    with _open_result(data) as image, _reading(image):
        image.load()
        ImageOps.exif_transpose(image, in_place=True)
        if (image.height, image.width) != target.shape[:2]:
            raise _UnexpectedOrientation
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
