"""nodes/result_images.py: result files to one IMAGE batch, exactly as ComfyUI's LoadImage.

Each file is opened once and decoded once, straight into its slot of the
batch; ``plain`` below is the straightforward way, written out as the reference.
"""

from __future__ import annotations

import io
import struct
import tracemalloc
import zlib

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from helpers import graphics_like, open_bytes, photo_like, photo_pixels, pillow_bytes, png_chunk, psnr, raw_png, to_uint8_reference
from packloader import pack_import

results = pack_import("nodes.result_images")


def decode(data: bytes) -> np.ndarray:
    """A result file through the pack's one path, back to the uint8 values it holds."""
    batch, _ = results.results_to_tensor([results.inspect_result(data)])
    return np.rint(batch[0].numpy() * 255).astype(np.uint8)


def png(frame: np.ndarray) -> bytes:
    return pillow_bytes(Image.fromarray(frame), "PNG", compress_level=1)


def straight(files: list[bytes]) -> tuple[torch.Tensor, tuple[str, ...]]:
    return results.results_to_tensor([results.inspect_result(data) for data in files])


def plain(files: list[bytes]) -> tuple[torch.Tensor, tuple[str, ...]]:
    """The straightforward way, written out here as the reference: decode each file
    whole with Pillow, flatten alpha onto black, scale 16 bits, pad, divide."""
    frames = []
    for data in files:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            image = ImageOps.exif_transpose(image)
            if image.mode in ("I;16", "I;16B", "I"):
                wide = np.asarray(image).astype(np.uint32)
                frames.append(np.repeat(((wide * 255 + 32767) // 65535).astype(np.uint8)[..., None], 3, axis=2))
                continue
            rgba = np.asarray(image.convert("RGBA")).astype(np.uint16)
            frames.append(((rgba[..., :3] * rgba[..., 3:] + 127) // 255).astype(np.uint8))
    height, width = max(f.shape[0] for f in frames), max(f.shape[1] for f in frames)
    batch = torch.zeros((len(frames), height, width, 3))
    notes = []
    for index, frame in enumerate(frames):
        h, w = frame.shape[:2]
        top, left = (height - h) // 2, (width - w) // 2
        batch[index, top : top + h, left : left + w] = torch.from_numpy(frame.astype(np.float32) / 255.0)
        if (h, w) != (height, width):
            notes.append(f"result {index + 1} is {w}×{h}, padded to {width}×{height}")
    return batch, tuple(notes)


def exif_orientation(value: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = value
    return exif.tobytes()


def test_every_kind_of_result_decodes_as_the_plain_path_does():
    rgb = photo_pixels(48, 64, seed=1)
    gray16 = (np.arange(48 * 64, dtype=np.uint16).reshape(48, 64) * 21).astype(np.uint16)
    rgba = np.dstack([rgb, np.linspace(0, 255, 64, dtype=np.uint8)[None, :].repeat(48, 0)])
    files = [
        pillow_bytes(Image.fromarray(rgb), "PNG"),
        pillow_bytes(Image.fromarray(rgb), "JPEG", quality=90),
        pillow_bytes(Image.fromarray(rgb), "WEBP", lossless=True),
        pillow_bytes(Image.fromarray(rgba, "RGBA"), "PNG"),
        pillow_bytes(Image.fromarray(rgb).quantize(16), "PNG", transparency=0),
        pillow_bytes(Image.fromarray(rgb), "PNG", transparency=tuple(int(v) for v in rgb[0, 0])),
        pillow_bytes(Image.fromarray(rgb[..., 0], "L"), "PNG"),
        pillow_bytes(Image.fromarray(gray16), "PNG"),
        pillow_bytes(Image.fromarray(rgb), "JPEG", quality=95, exif=exif_orientation(6)),  # rotated: 48 wide
    ]
    batch, notes = straight(files)
    expected, expected_notes = plain(files)
    assert batch.shape == expected.shape == (9, 64, 64, 3)
    assert torch.equal(batch, expected) and notes == expected_notes
    assert notes[-1] == "result 9 is 48×64, padded to 64×64"


def test_large_results_in_many_strips_match_too():
    files = [pillow_bytes(Image.fromarray(photo_pixels(1100, 700, seed=seed)), "PNG", compress_level=1) for seed in range(3)]
    batch, notes = straight(files)
    assert torch.equal(batch, plain(files)[0]) and notes == ()


def test_a_png_rotated_by_exif_after_its_pixels_is_known_upright_before_decoding():
    png = pillow_bytes(Image.fromarray(photo_pixels(20, 40, seed=2)), "PNG", exif=exif_orientation(8))
    chunks, at = [], 8
    while at < len(png):  # move the eXIf chunk behind IDAT, where the header read cannot see it
        (length,) = struct.unpack(">I", png[at : at + 4])
        chunks.append(png[at : at + 12 + length])
        at += 12 + length
    exif = next(chunk for chunk in chunks if chunk[4:8] == b"eXIf")
    chunks.remove(exif)
    late = png[:8] + b"".join(chunks[:-1]) + exif + chunks[-1]
    assert results.inspect_result(late).width == 20  # found by walking the chunks, no decode
    batch, _ = straight([late])
    assert batch.shape == (1, 40, 20, 3) and torch.equal(batch, plain([late])[0])


@pytest.mark.parametrize(
    "data, words",
    [
        (b"<!DOCTYPE html><html><body>403</body></html>", "result is not an image (looks like HTML"),
        (b"\x89PNG\r\n\x1a\n" + b"x" * 30, "header is corrupt"),
        (
            b"\x89PNG\r\n\x1a\n"
            + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0))
            + png_chunk(b"IDAT", zlib.compress(b""))
            + png_chunk(b"IEND", b""),
            "large",
        ),
    ],
)
def test_inspecting_a_download_refuses_bad_files_at_once(data, words):
    with pytest.raises(ValueError, match="result") as inspected:
        results.inspect_result(data)
    assert words in str(inspected.value)


def test_a_truncated_result_is_a_clear_error():
    data = pillow_bytes(Image.fromarray(photo_pixels(64, 64)), "PNG")
    result = results.inspect_result(data[: len(data) // 2])  # the header is intact
    with pytest.raises(ValueError, match="truncated or corrupt"):
        results.results_to_tensor([result, results.inspect_result(data)])


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
