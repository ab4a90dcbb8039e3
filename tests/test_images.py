"""Tests for nodes/upload_images.py and nodes/result_images.py: IMAGE tensors <-> image bytes."""

from __future__ import annotations

import base64
import io
import json
import math
import struct
import tracemalloc
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from packloader import pack_import

upload = pack_import("nodes.upload_images")
results = pack_import("nodes.result_images")
request = pack_import("client.request")
EDIT = pack_import("client.schemas").EDIT


# ---------------------------------------------------------------- helpers


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


def pillow_bytes(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def open_bytes(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def decode(data: bytes) -> np.ndarray:
    """A result file through the pack's one path, back to the uint8 values it holds."""
    batch, _ = results.results_to_tensor([results.inspect_result(data)])
    return np.rint(batch[0].numpy() * 255).astype(np.uint8)


def png(frame: np.ndarray) -> bytes:
    return pillow_bytes(Image.fromarray(frame), "PNG", compress_level=1)


def raw_png(width: int, height: int, bit_depth: int, color_type: int, rows: bytes = b"") -> bytes:
    """A PNG written by hand, for what Pillow will not write (48-bit colour, lying headers)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


# ---------------------------------------------------------------- frames_from_images


def test_batch_is_split_into_frame_views_in_order():
    batch = torch.rand(3, 8, 12, 3)
    frames = upload.frames_from_images(batch)
    assert len(frames) == 3
    for index, frame in enumerate(frames):
        assert frame.shape == (8, 12, 3)
        assert frame.data_ptr() == batch[index].data_ptr()  # a view, not a copy


def test_single_frame_and_rgba_are_accepted():
    assert [f.shape for f in upload.frames_from_images(torch.rand(5, 7, 3))] == [(5, 7, 3)]
    assert [f.shape for f in upload.frames_from_images(torch.rand(2, 5, 7, 4))] == [(5, 7, 4)] * 2


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (torch.rand(1, 3, 8, 8), "permute it to [B, H, W, C]"),
        (torch.rand(8, 8), "got shape [8, 8]"),
        (torch.rand(1, 8, 8, 1), "3 or 4 channels"),
        (torch.zeros(1, 8, 8, 3, dtype=torch.uint8), "convert it to float32"),
        (torch.rand(0, 8, 8, 3), "empty"),
        (np.zeros((8, 8, 3), np.float32), "got ndarray"),
    ],
)
def test_bad_tensors_get_a_one_line_message_saying_what_to_change(value, fragment):
    with pytest.raises(ValueError) as caught:
        upload.frames_from_images(value)
    message = str(caught.value)
    assert fragment in message and "\n" not in message


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_values_are_rejected_naming_the_frame(bad):
    batch = torch.rand(3, 4, 4, 3)
    batch[1, 2, 3, 0] = bad
    with pytest.raises(ValueError) as caught:
        upload.frames_from_images(batch)
    assert str(caught.value) == "image 2 of the batch contains NaN/inf values; fix the node that produced it"
    with pytest.raises(ValueError, match="NaN/inf"):
        upload.encode_for_upload(batch[1])


def test_huge_finite_values_are_clipped_not_mistaken_for_inf():
    frame = torch.full((64, 64, 3), 3e38)  # the float32 sum overflows; the values are finite
    assert len(upload.frames_from_images(frame)) == 1
    decoded = np.asarray(open_bytes(upload.encode_for_upload(frame).data))
    assert decoded.min() >= 250


# ---------------------------------------------------------------- float -> uint8


def test_uint8_conversion_clips_and_rounds_to_nearest_ties_to_even():
    k = torch.arange(256, dtype=torch.float64)
    values = torch.cat([k / 255, (k[:-1] + 0.4) / 255, (k[:-1] + 0.6) / 255, torch.tensor([-0.2, -1e9, 1.7, 1e9])])
    frame = values.float().view(-1, 1, 1).expand(-1, 1, 3).contiguous()
    got = upload._to_uint8(frame)[:, 0, 0].numpy()
    expected = np.concatenate([np.arange(256), np.arange(255), np.arange(1, 256), [0, 0, 255, 255]])
    np.testing.assert_array_equal(got, expected)  # truncation would fail the +0.6 half
    # exact ties: float32(x) * 255 is exactly k + 0.5 for these
    ties = torch.tensor([0.5, 1.5, 2.5, 127.5, 253.5, 254.5], dtype=torch.float64) / 255
    frame = ties.float().view(-1, 1, 1).expand(-1, 1, 3).contiguous()
    np.testing.assert_array_equal(upload._to_uint8(frame)[:, 0, 0].numpy(), [0, 2, 2, 128, 254, 254])


def test_uint8_conversion_matches_the_rule_across_blocks_and_dtypes():
    frame = photo_like(301, 1700, seed=4) * 1.2 - 0.1  # several row blocks, values beyond 0..1
    np.testing.assert_array_equal(upload._to_uint8(frame).numpy(), to_uint8_reference(frame))
    half = frame.half()
    np.testing.assert_array_equal(upload._to_uint8(half).numpy(), to_uint8_reference(half.float()))
    strided = photo_like(64, 64, channels=4)[..., :3]  # a non-contiguous view
    np.testing.assert_array_equal(upload._to_uint8(strided).numpy(), to_uint8_reference(strided.contiguous()))


# ---------------------------------------------------------------- encode_for_upload


def test_rgb_frame_becomes_jpeg_with_nothing_to_report():
    encoded = upload.encode_for_upload(photo_like(96, 128))
    assert encoded.mime_type == "image/jpeg" and encoded.data[:3] == b"\xff\xd8\xff"
    assert (encoded.width, encoded.height, encoded.source_width, encoded.source_height) == (128, 96, 128, 96)
    assert encoded.adjustments == ()
    decoded = open_bytes(encoded.data)
    assert decoded.size == (128, 96) and [layer[1:3] for layer in decoded.layer] == [(1, 1)] * 3  # 4:4:4


def test_data_uri_round_trips():
    encoded = upload.encode_for_upload(photo_like(16, 16))
    inline = request.InlineImage(encoded.data, encoded.mime_type)
    body = request.JobRequest.checked(EDIT, {"prompt": "x", "image_urls": [inline, "https://a.example/b.png"]}).body
    prefix, payload = json.loads(body)["image_urls"][0].split(",", 1)
    assert prefix == "data:image/jpeg;base64"
    assert base64.b64decode(payload) == encoded.data
    assert "data=" not in repr(encoded) and "data=" not in repr(inline)  # the bytes stay out of logs


def test_transparent_rgba_keeps_its_alpha_losslessly():
    frame = photo_like(40, 60, channels=4, seed=2)
    frame[:20, :, 3] = 0.0
    frame[20:, :30, 3] = 0.25
    encoded = upload.encode_for_upload(frame)
    assert encoded.mime_type == "image/webp" and encoded.adjustments == ()
    decoded = open_bytes(encoded.data)
    assert decoded.mode == "RGBA"
    np.testing.assert_array_equal(np.asarray(decoded), to_uint8_reference(frame))  # colour under alpha 0 too


def test_opaque_rgba_is_sent_as_rgb_jpeg():
    frame = photo_like(32, 32, channels=4)
    frame[..., 3] = 1.0
    frame[0, 0, 3] = 254.6 / 255  # still rounds to 255: opaque
    encoded = upload.encode_for_upload(frame)
    assert encoded.mime_type == "image/jpeg" and open_bytes(encoded.data).mode == "RGB"


def test_oversized_frame_is_downscaled_keeping_aspect_never_upscaled():
    frame = photo_like(400, 600)
    max_pixels = 4096 * 4096 // 100  # same ratio as 6000×4000 against 16.8 MP
    encoded = upload.encode_for_upload(frame, max_pixels=max_pixels)
    assert encoded.width * encoded.height <= max_pixels
    assert (encoded.width, encoded.height) == (501, 334)
    assert abs(encoded.width / encoded.height - 1.5) < 1 / encoded.height
    assert open_bytes(encoded.data).size == (501, 334)
    assert encoded.adjustments == ("downscaled 600×400 → 501×334 to fit 0.2 MP",)
    small = upload.encode_for_upload(photo_like(10, 20), max_pixels=10**9)
    assert (small.width, small.height) == (20, 10) and small.adjustments == ()


def test_the_documented_16_8_megapixel_case_sizes():
    assert upload._fit_size(6000, 4000, 4096 * 4096, 65535) == (5016, 3344)
    assert upload._fit_size(8192, 8192, 4096 * 4096, 65535) == (4096, 4096)
    assert upload._fit_size(20000, 500, 4096 * 4096, 16383) == (16383, 409)
    for width, height in [(4097, 4096), (9999, 7), (3, 50_000_000)]:
        w, h = upload._fit_size(width, height, 4096 * 4096, 65535)
        assert w * h <= 4096 * 4096 and w <= width and h <= height


def test_over_budget_frame_steps_quality_down_first():
    frame = photo_like(256, 256, seed=5)
    normal = upload.encode_for_upload(frame)
    budget = int(len(normal.data) * 0.9)
    encoded = upload.encode_for_upload(frame, max_bytes=budget)
    assert len(encoded.data) <= budget
    assert (encoded.width, encoded.height) == (256, 256)
    assert encoded.adjustments == (f"re-encoded as JPEG q90 to fit {upload._format_bytes(budget)}",)


def test_far_over_budget_frame_is_also_downscaled_until_it_fits():
    frame = photo_like(300, 400, seed=6)
    encoded = upload.encode_for_upload(frame, max_bytes=8000)
    assert len(encoded.data) <= 8000
    assert encoded.width < 400 and abs(encoded.width / encoded.height - 4 / 3) < 0.02
    assert open_bytes(encoded.data).size == (encoded.width, encoded.height)
    assert encoded.adjustments == (
        "re-encoded as JPEG q80 to fit 7.81 KiB",
        f"downscaled 400×300 → {encoded.width}×{encoded.height} to fit 7.81 KiB",
    )


def test_over_budget_rgba_goes_lossy_but_keeps_alpha():
    frame = photo_like(128, 128, channels=4, seed=7)
    frame[..., 3] = (frame[..., 3] > 0.5).float()
    encoded = upload.encode_for_upload(frame, max_bytes=20_000)
    assert len(encoded.data) <= 20_000 and encoded.mime_type == "image/webp"
    assert encoded.adjustments[0].startswith("re-encoded as lossy WebP (alpha kept)")
    decoded = open_bytes(encoded.data)
    assert decoded.mode == "RGBA" and decoded.size == (encoded.width, encoded.height)


def test_impossible_budget_is_a_clear_error():
    with pytest.raises(ValueError, match="cannot encode an image within 10 bytes"):
        upload.encode_for_upload(photo_like(32, 32), max_bytes=10)


@pytest.mark.parametrize("source", ["photo", "graphics"])
def test_upload_quality_is_at_least_pillow_jpeg_q95(source):
    if source == "photo":
        frame = photo_like(1024, 1024, seed=8)
        original = to_uint8_reference(frame)
    else:
        original = graphics_like()
        frame = torch.from_numpy(original.astype(np.float32) / 255.0)
    reference = open_bytes(pillow_bytes(Image.fromarray(original), "JPEG", quality=95))
    ours = open_bytes(upload.encode_for_upload(frame).data)
    assert psnr(np.asarray(ours), original) >= psnr(np.asarray(reference), original)


# ---------------------------------------------------------------- decoding results


def test_decode_png_and_lossless_webp_exactly():
    original = to_uint8_reference(photo_like(20, 30))
    for data in (
        pillow_bytes(Image.fromarray(original), "PNG"),
        pillow_bytes(Image.fromarray(original), "WEBP", lossless=True),
    ):
        decoded = decode(data)
        assert decoded.dtype == np.uint8 and decoded.shape == (20, 30, 3)
        np.testing.assert_array_equal(decoded, original)


def test_decode_jpeg():
    data = pillow_bytes(Image.fromarray(to_uint8_reference(photo_like(64, 48))), "JPEG", quality=95)
    decoded = decode(data)
    assert decoded.shape == (64, 48, 3)
    np.testing.assert_array_equal(decoded, np.asarray(open_bytes(data)))


def test_decode_palette_and_grayscale():
    palette = Image.fromarray(graphics_like(256)).quantize(16)
    decoded = decode(pillow_bytes(palette, "PNG"))
    np.testing.assert_array_equal(decoded, np.asarray(palette.convert("RGB")))
    gray = np.arange(256, dtype=np.uint8).reshape(16, 16)
    decoded = decode(pillow_bytes(Image.fromarray(gray, "L"), "PNG"))
    np.testing.assert_array_equal(decoded, np.repeat(gray[..., None], 3, axis=2))


def test_decode_16_bit_grayscale_scales_instead_of_clipping():
    samples = np.array([[0, 257, 32768, 65535]], dtype=np.uint16)
    rows = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in samples)
    decoded = decode(raw_png(4, 1, 16, 0, rows))
    np.testing.assert_array_equal(decoded[0, :, 0], [0, 1, 128, 255])
    assert decoded.shape == (1, 4, 3)


def test_decode_16_bit_colour():
    samples = np.array([[[65535, 0, 32896], [257, 65535, 0]]], dtype=np.uint16)
    rows = b"\x00" + samples.astype(">u2").tobytes()
    decoded = decode(raw_png(2, 1, 16, 2, rows))
    np.testing.assert_array_equal(decoded[0], [[255, 0, 128], [1, 255, 0]])


def test_decode_flattens_transparency_onto_black():
    rgba = np.array([[[200, 100, 50, 128], [10, 20, 30, 255], [255, 255, 255, 0]]], dtype=np.uint8)
    decoded = decode(pillow_bytes(Image.fromarray(rgba, "RGBA"), "PNG"))
    np.testing.assert_array_equal(decoded[0], [[100, 50, 25], [10, 20, 30], [0, 0, 0]])
    gray_alpha = Image.fromarray(np.array([[[200, 0], [200, 255]]], dtype=np.uint8), "LA")
    np.testing.assert_array_equal(decode(pillow_bytes(gray_alpha, "PNG"))[0], [[0, 0, 0], [200] * 3])
    palette = Image.new("P", (2, 1))
    palette.putpalette([255, 0, 0, 0, 255, 0])
    palette.putdata([0, 1])
    decoded = decode(pillow_bytes(palette, "PNG", transparency=0))
    np.testing.assert_array_equal(decoded[0], [[0, 0, 0], [0, 255, 0]])


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_decode_applies_exif_orientation(fmt):
    original = to_uint8_reference(photo_like(2 * 16, 3 * 16))  # 48 wide, 32 high
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    options = {"quality": 100, "subsampling": 0} if fmt == "JPEG" else {}
    decoded = decode(pillow_bytes(Image.fromarray(original), fmt, exif=exif, **options))
    assert decoded.shape == (48, 32, 3)
    assert psnr(decoded, np.rot90(original, k=-1)) > 40


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"<!DOCTYPE html>\n<html><body>403 Forbidden</body></html>", "looks like HTML: '<!DOCTYPE html> <html>"),
        (b'{"error_code": 404001, "error_message": "expired"}', 'looks like JSON: \'{"error_code"'),
        (b"", "empty"),
        (b"Access denied", "looks like text"),
        (b"\x00\x01\x02\xff" * 10, "40 bytes starting with 00 01 02 ff"),
    ],
)
def test_non_image_bytes_are_named(data, fragment):
    with pytest.raises(ValueError) as caught:
        decode(data)
    message = str(caught.value)
    assert message.startswith("result is not an image (") and fragment in message and "\n" not in message


def test_truncated_or_corrupt_images_are_a_clear_error():
    data = pillow_bytes(Image.fromarray(to_uint8_reference(photo_like(64, 64))), "PNG")
    with pytest.raises(ValueError, match="truncated or corrupt"):
        decode(data[: len(data) // 2])
    with pytest.raises(ValueError, match="header is corrupt"):
        decode(data[:8] + b"x" * 30)


@pytest.mark.parametrize(("width", "height"), [(9000, 9000), (20000, 20000)])
def test_decompression_bombs_are_refused_before_decoding(width, height):
    with pytest.raises(ValueError, match="large"):
        decode(raw_png(width, height, 8, 2))


@pytest.mark.parametrize(("width", "height"), [(6336, 2688), (4096, 4096)])
def test_largest_real_results_decode(width, height):
    data = pillow_bytes(Image.new("RGB", (width, height), (10, 20, 30)), "PNG", compress_level=1)
    decoded = decode(data)
    assert decoded.shape == (height, width, 3) and decoded[-1, -1].tolist() == [10, 20, 30]


# ---------------------------------------------------------------- the IMAGE batch


def test_tensor_matches_comfyui_loadimage_exactly():
    values = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)
    frames = [values, values[::-1].copy()]
    batch, notes = results.results_to_tensor([results.inspect_result(png(frame)) for frame in frames])
    assert batch.dtype == torch.float32 and batch.shape == (2, 16, 16, 3) and notes == ()
    for index, frame in enumerate(frames):
        expected = torch.from_numpy(np.array(frame).astype(np.float32) / 255.0)  # LoadImage's formula
        assert torch.equal(batch[index], expected)


def test_mixed_sizes_are_padded_centred_on_black_with_a_note():
    big = np.full((768, 1376, 3), 200, np.uint8)
    small = to_uint8_reference(photo_like(768, 1024))
    tall = np.full((800, 100, 3), 50, np.uint8)
    batch, notes = results.results_to_tensor([results.inspect_result(png(frame)) for frame in (big, small, tall)])
    assert batch.shape == (3, 800, 1376, 3)
    assert notes == (
        "result 1 is 1376×768, padded to 1376×800",
        "result 2 is 1024×768, padded to 1376×800",
        "result 3 is 100×800, padded to 1376×800",
    )
    inner = batch[1, 16:784, 176:1200]
    assert torch.equal(inner, torch.from_numpy(small.astype(np.float32) / 255.0))  # not resampled
    assert batch[1, :16].abs().sum() == 0 and batch[1, :, :176].abs().sum() == 0 and batch[1, :, 1200:].abs().sum() == 0
    assert batch[2, :, 638:738].eq(50 / 255).all() and batch[2, :, :638].abs().sum() == 0


def test_no_results_is_an_error():
    with pytest.raises(ValueError, match="no result images"):
        results.results_to_tensor([])


def test_conversion_makes_no_frame_sized_temporaries():
    files = [png(to_uint8_reference(photo_like(1024, 1024, seed=s))) for s in range(4)]
    opened = [results.inspect_result(data) for data in files]
    tracemalloc.start()
    try:
        batch, _ = results.results_to_tensor(opened)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # torch's output buffer and Pillow's decoder memory are not traced; a numpy
    # copy of a frame (3 MiB as uint8, 12 MiB as float) would be. Only row strips are.
    assert peak < 2 * 1024 * 1024 < 1024 * 1024 * 3
    assert batch.shape == (4, 1024, 1024, 3)


def test_a_frame_wider_than_jpeg_allows_is_fitted_not_refused():
    frame = photo_like(2, 70_000)
    encoded = upload.encode_for_upload(frame)
    assert encoded.mime_type == "image/jpeg" and encoded.width <= 65_500
    assert any("side limit" in note for note in encoded.adjustments)
    assert open_bytes(encoded.data).size == (encoded.width, encoded.height)
