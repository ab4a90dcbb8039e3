"""ComfyUI IMAGE frames → bytes the API accepts inline, within its per-image limits.

RGB frames become JPEG q95 with full-resolution chroma; frames with real
transparency become lossless WebP. Frames too large for the model, or for the
byte budget, are downscaled and/or re-encoded, with a note saying so.

Pure, synchronous functions without ComfyUI or HTTP imports. The nodes call
them on their worker pool (``workers.py``); the heavy work (torch ops, Pillow codecs
and resampling) releases the GIL, so the event loop stays free.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field

import torch
from PIL import Image

from ..client.limits import MAX_INLINE_IMAGE_BYTES, MAX_INPUT_PIXELS

# JPEG q95 with full-resolution chroma (4:4:4): at least as faithful as
# Pillow's q95 default (4:2:0) on photos and far better on coloured edges and
# text (29.9 dB vs 50.1 dB on a graphics test), for ~25 ms more at 4096².
JPEG_QUALITY = 95
JPEG_SUBSAMPLING_444 = 0
# Lower quality steps used only when a frame exceeds the byte budget.
QUALITY_STEPS = (90, 85, 80)
# A full encode is skipped only when the sampled estimate exceeds the budget
# by this factor, twice the worst estimate error seen (so it would not fit).
_ESTIMATE_MARGIN = 1.10
# libwebp's effort: 0 is the fastest and, for lossless, no larger here.
WEBP_METHOD = 0
MAX_SIDE = {"RGB": 65500, "RGBA": 16383}  # libjpeg's and WebP's side limits
# Float scratch per conversion block (16 MiB): fits in L3 and is reused, so
# block-wise conversion is ~3x faster than whole-frame ops on a 4K frame and
# never holds a second full-size float copy; big enough that a 4K frame
# needs only 12 blocks, i.e. few GIL hand-offs between torch ops.
_BLOCK_VALUES = 1 << 22
# Upload frames go to Pillow in strips of this many values (1 MiB of uint8).
_STRIP_VALUES = 1 << 20


@dataclass(frozen=True)
class EncodedImage:
    """One frame ready to send inline, plus what was changed to make it fit."""

    data: bytes = field(repr=False)
    mime_type: str
    width: int
    height: int
    source_width: int
    source_height: int
    adjustments: tuple[str, ...] = ()


# ---------------------------------------------------------------- upload


def frames_from_images(images: torch.Tensor) -> list[torch.Tensor]:
    """Split an IMAGE batch ([B,H,W,C], or one [H,W,C] frame) into frame views.

    Validates once per batch so a bad tensor fails before anything is billed,
    with a message that names the offending frame.
    """
    if not isinstance(images, torch.Tensor):
        raise ValueError(f"expected an IMAGE tensor, got {type(images).__name__}")
    batch = images.unsqueeze(0) if images.dim() == 3 else images
    _check_shape(batch, images.shape)
    # One cheap reduction per frame (6 ms at 4096²) instead of a full isfinite
    # mask (130+ ms): NaN/inf make the sum non-finite. Only then is the frame
    # checked exactly, since huge finite values can overflow a float32 sum.
    sums = batch.sum(dim=(1, 2, 3))
    for index, total in enumerate(sums.tolist(), start=1):
        if not math.isfinite(total) and not bool(torch.isfinite(batch[index - 1]).all()):
            raise ValueError(
                f"image {index} of the batch contains NaN/inf values; fix the node that produced it"
            )
    return list(batch.unbind(0))


def encode_for_upload(
    frame: torch.Tensor, *, max_bytes: int = MAX_INLINE_IMAGE_BYTES, max_pixels: int = MAX_INPUT_PIXELS
) -> EncodedImage:
    """Check one [H,W,C] frame as ``frames_from_images`` checks a batch, then ``encode_frame`` it."""
    if frame.dim() != 3:
        raise ValueError(f"expected one frame shaped [height, width, channels], got {list(frame.shape)}")
    (only,) = frames_from_images(frame)
    return encode_frame(only, max_bytes=max_bytes, max_pixels=max_pixels)


def encode_frame(
    frame: torch.Tensor, *, max_bytes: int = MAX_INLINE_IMAGE_BYTES, max_pixels: int = MAX_INPUT_PIXELS
) -> EncodedImage:
    """Encode one frame of ``frames_from_images`` (already checked) within ``max_pixels`` and ``max_bytes``.

    Never refuses a frame for its size: it is downscaled (aspect kept) and/or
    re-encoded at lower quality instead, and each such change is reported in
    ``adjustments`` so the user knows what the model actually saw.
    """
    if max_bytes < 1 or max_pixels < 1:
        raise ValueError(f"max_bytes and max_pixels must be positive, got {max_bytes} and {max_pixels}")
    height, width, channels = frame.shape
    keep_alpha = channels == 4 and to_uint8(frame[..., 3].amin().reshape(1, 1, 1)).item() < 255
    image = to_image(frame if keep_alpha else frame[..., :3], "RGBA" if keep_alpha else "RGB")

    notes: list[str] = []
    fitted = fit_size(width, height, max_pixels, MAX_SIDE[image.mode])
    if fitted != image.size:
        too_many = width * height > max_pixels
        reason = f"{max_pixels / 1e6:.1f} MP" if too_many else f"the {MAX_SIDE[image.mode]} px side limit"
        notes.append(f"downscaled {width}×{height} → {fitted[0]}×{fitted[1]} to fit {reason}")
        image = _resize(image, fitted)

    data, mime, final = _encode_within(image, max_bytes, notes)
    return EncodedImage(data, mime, final[0], final[1], width, height, tuple(notes))


def _check_shape(batch: torch.Tensor, shape: torch.Size) -> None:
    """Reject tensors ComfyUI nodes should never pass as IMAGE, saying what to change."""
    expected = "an IMAGE shaped [batch, height, width, 3 or 4 channels]"
    if batch.dim() != 4:
        raise ValueError(f"expected {expected}, got shape {list(shape)}")
    if not batch.is_floating_point():
        raise ValueError(f"expected {expected} of floats 0..1, got dtype {batch.dtype}; convert it to float32")
    if batch.shape[-1] not in (3, 4):
        hint = "; it looks channels-first, permute it to [B, H, W, C]" if batch.shape[1] in (3, 4) else ""
        raise ValueError(f"expected {expected}, got shape {list(shape)}{hint}")
    if 0 in batch.shape:
        raise ValueError(f"expected {expected}, got an empty tensor of shape {list(shape)}")


def to_uint8(frame: torch.Tensor) -> torch.Tensor:
    """[H,W,C] floats 0..1 → contiguous CPU uint8: clip, then round to nearest (ties to even).

    Works in row blocks through one reused float32 scratch (see
    ``_BLOCK_VALUES``), so there is never a second full-size float copy.
    """
    height, width, channels = frame.shape
    out = torch.empty((height, width, channels), dtype=torch.uint8)
    rows = max(1, _BLOCK_VALUES // (width * channels))
    scratch = torch.empty((min(rows, height), width, channels), dtype=torch.float32, device=frame.device)
    for top in range(0, height, rows):
        block = _quantize(scratch[: min(rows, height - top)], frame[top : top + rows])
        out[top : top + rows].copy_(block)
    return out


def _quantize(scratch: torch.Tensor, floats: torch.Tensor) -> torch.Tensor:
    """``floats`` (0..1) as 0..255 values rounded to nearest (ties to even) and clipped, in ``scratch``."""
    return scratch.copy_(floats).mul_(255.0).round_().clamp_(0.0, 255.0)


def to_image(frame: torch.Tensor, mode: str) -> Image.Image:
    """[H,W,C] floats 0..1 → a Pillow image, pixel for pixel what ``to_uint8`` gives.

    Converted in row strips (see ``_STRIP_VALUES``) through a reused float
    scratch and a reused uint8 strip pasted into the image: no full-size
    uint8 copy is ever made, and everything stays in cache (at 4096² this is
    steadier and ~25% faster than converting the whole frame, then copying
    it into Pillow).
    """
    height, width, channels = frame.shape
    image = Image.new(mode, (width, height), None)  # not cleared: every row is pasted
    rows = max(1, min(height, _STRIP_VALUES // (width * channels)))
    scratch = torch.empty((rows, width, channels), dtype=torch.float32, device=frame.device)
    strip = torch.empty((rows, width, channels), dtype=torch.uint8)
    for top in range(0, height, rows):
        count = min(rows, height - top)
        strip[:count].copy_(_quantize(scratch[:count], frame[top : top + count]))
        pixels = Image.frombuffer(mode, (width, count), strip[:count].numpy(), "raw", mode, 0, 1)
        image.paste(pixels, (0, top))
    return image


def fit_size(width: int, height: int, max_pixels: int, max_side: int) -> tuple[int, int]:
    """Largest size with the same aspect ratio within both limits; never larger than the input."""
    scale = min(1.0, math.sqrt(max_pixels / (width * height)), max_side / max(width, height))
    if scale >= 1.0:
        return width, height
    new_w, new_h = max(1, int(width * scale)), max(1, int(height * scale))
    while new_w * new_h > max_pixels:  # float rounding can overshoot by a pixel row
        new_w, new_h = (new_w - 1, new_h) if new_w >= new_h else (new_w, new_h - 1)
    return new_w, new_h


def _resize(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Lanczos downscale; ``reducing_gap`` lets Pillow box-reduce big factors first (faster, same look).

    Pillow resamples RGBA premultiplied, so transparent pixels leave no halo.
    """
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def _encode(image: Image.Image, quality: int | None) -> tuple[bytes, str]:
    """One encoding attempt. ``quality=None`` means the normal, best setting."""
    buffer = io.BytesIO()
    if image.mode == "RGB":
        image.save(buffer, "JPEG", quality=quality or JPEG_QUALITY, subsampling=JPEG_SUBSAMPLING_444)
        return buffer.getvalue(), "image/jpeg"
    if quality is None:  # transparency: lossless, and faster than PNG at any compress_level here
        image.save(buffer, "WEBP", lossless=True, quality=0, method=WEBP_METHOD, exact=True)
    else:  # lossy colour, lossless alpha
        image.save(buffer, "WEBP", quality=quality, alpha_quality=100, method=WEBP_METHOD)
    return buffer.getvalue(), "image/webp"


def _encode_within(image: Image.Image, max_bytes: int, notes: list[str]) -> tuple[bytes, str, tuple[int, int]]:
    """Encode at the best setting, then at lower quality, then smaller, until it fits.

    Each downscale starts again from ``image`` (not from the previous attempt),
    so repeated attempts do not blur cumulatively. On large RGB frames a full
    encode that a sample shows cannot fit is skipped (see ``_JpegSizeEstimate``);
    the outcome is the same, only the doomed attempts are not made.
    """
    estimate = _JpegSizeEstimate(image) if _JpegSizeEstimate.worthwhile(image) else None

    def hopeless(quality: int | None) -> bool:
        if estimate is None or estimate.last_bytes < max_bytes * _ESTIMATE_MARGIN * 1.5:
            return False  # the step above was close, so this one likely fits: just try it
        return estimate.bytes(quality) > max_bytes * _ESTIMATE_MARGIN

    if not hopeless(None):
        data, mime = _encode(image, None)
        if len(data) <= max_bytes:
            return data, mime, image.size
    budget = _format_bytes(max_bytes)
    steps = QUALITY_STEPS if image.mode == "RGB" else (JPEG_QUALITY, *QUALITY_STEPS)
    kind = "JPEG" if image.mode == "RGB" else "lossy WebP (alpha kept)"
    for quality in steps:
        if quality != steps[-1] and hopeless(quality):  # the last one is always made: its size steers the downscale
            continue
        data, mime = _encode(image, quality)
        if len(data) <= max_bytes:
            notes.append(f"re-encoded as {kind} q{quality} to fit {budget}")
            return data, mime, image.size
    notes.append(f"re-encoded as {kind} q{steps[-1]} to fit {budget}")
    size = image.size
    while len(data) > max_bytes:
        if size == (1, 1):
            raise ValueError(f"cannot encode an image within {budget}; raise the byte limit")
        scale = min(0.95, math.sqrt(max_bytes / len(data)) * 0.95)  # bytes scale roughly with area
        size = (max(1, int(size[0] * scale)), max(1, int(size[1] * scale)))
        data, mime = _encode(_resize(image, size), steps[-1])
    notes.append(f"downscaled {image.width}×{image.height} → {size[0]}×{size[1]} to fit {budget}")
    return data, mime, size


class _JpegSizeEstimate:
    """Predicts a large frame's JPEG size from every 8th band of 8 rows.

    With 4:4:4 sampling a band of 8 rows is exactly one row of JPEG blocks,
    and libjpeg's standard Huffman tables make each block's size independent
    of the others, so the sample's size times 8 is a stratified estimate of
    the whole (within ~1% on photos, ~5% on screenshots). It costs about a
    seventh of a full encode; a full 4096² encode that cannot fit costs ~60 ms.
    """

    EVERY = 8
    MIN_ROWS = 1024  # at least 16 sampled bands
    MIN_PIXELS = 4_000_000

    def __init__(self, image: Image.Image) -> None:
        width, height = image.size
        tops = range(0, height - 7, 8 * self.EVERY)
        self._sample = Image.new(image.mode, (width, 8 * len(tops)), None)  # every row is pasted
        for index, top in enumerate(tops):
            self._sample.paste(image.crop((0, top, width, top + 8)), (0, 8 * index))
        self._scale = height / self._sample.height
        self.last_bytes = float("inf")  # the most recent estimate


    @classmethod
    def worthwhile(cls, image: Image.Image) -> bool:
        return image.mode == "RGB" and image.height >= cls.MIN_ROWS and image.width * image.height >= cls.MIN_PIXELS

    def bytes(self, quality: int | None) -> float:
        self.last_bytes = len(_encode(self._sample, quality)[0]) * self._scale
        return self.last_bytes


def _format_bytes(count: int) -> str:
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count >= scale:
            return f"{count / scale:.3g} {unit}"
    return f"{count} bytes"
