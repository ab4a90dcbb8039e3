"""What many tests share: image makers, the pack's client pointed at a simulator, node widgets.

Fixtures (the simulator, an environment pointing at it, a ``Jobs`` for it)
live in ``conftest.py``; this module holds plain functions and values.
"""

from __future__ import annotations

import io
import math
import struct
import zlib
from typing import Any

import numpy as np
import torch
from PIL import Image

from packloader import pack_import

client_pkg = pack_import("client")
retry = pack_import("client.transport.retry")

T2I = client_pkg.TEXT_TO_IMAGE
EDIT = client_pkg.EDIT
# Retries in milliseconds, so outages are ridden out quickly in tests.
FAST_RETRY = retry.RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05, max_retry_after=0.2)


# ---------------------------------------------------------------- the client against a simulator


def settings_for(sim: Any, **overrides: Any):
    return client_pkg.Settings(base_url=sim.url, token=sim.token, token_source="test", **overrides)


def jobs_for(settings: Any, *, http: Any = None, policy: Any = FAST_RETRY, **options: Any):
    """A ``Jobs`` (no journal unless given) with millisecond retries."""
    return client_pkg.Jobs(client_pkg.RunComfyClient(settings, http=http), retry=policy, **options)


class Updates(list):
    """Records a job's updates; ``stages`` lists them as the user saw them."""

    def __call__(self, update: Any) -> None:
        self.append(update)

    @property
    def stages(self) -> list[str]:
        return [update.stage for update in self]


def widget_defaults(node_class: type) -> dict[str, Any]:
    """Every required widget of a node at its default value."""
    return {name: spec[1]["default"] for name, spec in node_class.INPUT_TYPES()["required"].items()}


# ---------------------------------------------------------------- images


def photo_like(height: int, width: int, channels: int = 3, seed: int = 0) -> torch.Tensor:
    """A deterministic IMAGE frame [H, W, C] that compresses like a photo, unlike flat colours.

    Smooth random fields at two scales (upsampled low-res noise), fine sensor-like
    noise and a few hard edges (a disc, stripes).
    """
    gen = torch.Generator().manual_seed(seed)

    def field(grid: int, amplitude: float) -> torch.Tensor:
        low = torch.rand(1, channels, grid, grid, generator=gen)
        return torch.nn.functional.interpolate(low, size=(height, width), mode="bicubic") * amplitude

    image = field(6, 0.6) + field(48, 0.25) + torch.randn(1, channels, height, width, generator=gen) * (2 / 255)
    ys = (torch.arange(height) / height).view(height, 1)
    xs = (torch.arange(width) / width).view(1, width)
    image += 0.3 * ((ys - 0.5) ** 2 + (xs - 0.6) ** 2 < 0.04) - 0.2 * (((xs * 40).floor() % 2 == 0) & (ys > 0.8))
    return image.clamp_(0, 1)[0].permute(1, 2, 0).contiguous()


def photo_batch(height: int, width: int, channels: int = 3, seed: int = 0) -> torch.Tensor:
    """A one-frame IMAGE batch [1, H, W, C], quick to make even at 5000²; with 4 channels
    the alpha runs from 0 to 1, left to right."""
    rng = np.random.default_rng(seed)
    small = rng.random((max(2, height // 32), max(2, width // 32), 3)).astype(np.float32)
    big = np.asarray(
        Image.fromarray((small * 255).astype(np.uint8)).resize((width, height), Image.BICUBIC), dtype=np.float32
    ) / 255.0
    if channels == 4:
        alpha = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :].repeat(height, 0)[..., None]
        big = np.concatenate([big, alpha], axis=-1)
    big += rng.normal(0, 0.02, big.shape).astype(np.float32)
    return torch.from_numpy(np.clip(big, 0, 1))[None]


def photo_pixels(height: int, width: int, seed: int = 0, noise: float = 3.0) -> np.ndarray:
    """uint8 [H, W, 3]: a smooth colour field with grain (compresses like a photo)."""
    rng = np.random.default_rng(seed)
    small = Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8))
    field = np.asarray(small.resize((width, height), Image.Resampling.BICUBIC), dtype=np.float32)
    grain = rng.normal(0.0, noise, (height, width, 3)).astype(np.float32)
    return np.clip(field + grain, 0, 255).astype(np.uint8)


def graphics_like(size: int = 512, seed: int = 0) -> np.ndarray:
    """Thin coloured lines on a gradient: the content chroma subsampling damages."""
    rng = np.random.default_rng(seed)
    image = np.zeros((size, size, 3), np.uint8)
    image[..., 2] = np.linspace(40, 200, size, dtype=np.uint8)[None, :]
    for _ in range(150):
        top, left, thick = rng.integers(0, size - 40), rng.integers(0, size - 100), rng.integers(1, 4)
        image[top : top + thick, left : left + rng.integers(10, 100)] = rng.integers(0, 256, 3)
        image[top : top + rng.integers(5, 40), left : left + thick] = rng.integers(0, 256, 3)
    return image


def to_uint8_reference(frame: torch.Tensor) -> np.ndarray:
    """The documented rule: clip(round_half_even(float32(x) * 255), 0, 255)."""
    return np.clip(np.rint(frame.numpy().astype(np.float32) * np.float32(255)), 0, 255).astype(np.uint8)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def pillow_bytes(image: Image.Image, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def open_bytes(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def decodable(files: list[bytes]) -> bool:
    """Every file is a whole image Pillow can decode (and there is at least one)."""
    for data in files:
        open_bytes(data)
    return bool(files)


def raw_png(width: int, height: int, bit_depth: int, color_type: int, rows: bytes = b"") -> bytes:
    """A PNG written by hand, for what Pillow will not write (48-bit colour, lying headers)."""
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(rows)) + png_chunk(b"IEND", b"")


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
