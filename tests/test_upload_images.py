"""nodes/upload_images.py: IMAGE frames to the bytes sent inline, within the API's limits."""

from __future__ import annotations

import base64
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import EDIT, graphics_like, open_bytes, photo_like, photo_pixels, pillow_bytes, psnr, to_uint8_reference
from packloader import pack_import

upload = pack_import("nodes.upload_images")
request = pack_import("client.model.request")
schemas = pack_import("client.model.schemas")


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


def test_uint8_conversion_clips_and_rounds_to_nearest_ties_to_even():
    k = torch.arange(256, dtype=torch.float64)
    values = torch.cat([k / 255, (k[:-1] + 0.4) / 255, (k[:-1] + 0.6) / 255, torch.tensor([-0.2, -1e9, 1.7, 1e9])])
    frame = values.float().view(-1, 1, 1).expand(-1, 1, 3).contiguous()
    got = upload.to_uint8(frame)[:, 0, 0].numpy()
    expected = np.concatenate([np.arange(256), np.arange(255), np.arange(1, 256), [0, 0, 255, 255]])
    np.testing.assert_array_equal(got, expected)  # truncation would fail the +0.6 half
    # exact ties: float32(x) * 255 is exactly k + 0.5 for these
    ties = torch.tensor([0.5, 1.5, 2.5, 127.5, 253.5, 254.5], dtype=torch.float64) / 255
    frame = ties.float().view(-1, 1, 1).expand(-1, 1, 3).contiguous()
    np.testing.assert_array_equal(upload.to_uint8(frame)[:, 0, 0].numpy(), [0, 2, 2, 128, 254, 254])


def test_uint8_conversion_matches_the_rule_across_blocks_and_dtypes():
    frame = photo_like(301, 1700, seed=4) * 1.2 - 0.1  # several row blocks, values beyond 0..1
    np.testing.assert_array_equal(upload.to_uint8(frame).numpy(), to_uint8_reference(frame))
    half = frame.half()
    np.testing.assert_array_equal(upload.to_uint8(half).numpy(), to_uint8_reference(half.float()))
    strided = photo_like(64, 64, channels=4)[..., :3]  # a non-contiguous view
    np.testing.assert_array_equal(upload.to_uint8(strided).numpy(), to_uint8_reference(strided.contiguous()))


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
    assert upload.fit_size(6000, 4000, 4096 * 4096, 65535) == (5016, 3344)
    assert upload.fit_size(8192, 8192, 4096 * 4096, 65535) == (4096, 4096)
    assert upload.fit_size(20000, 500, 4096 * 4096, 16383) == (16383, 409)
    for width, height in [(4097, 4096), (9999, 7), (3, 50_000_000)]:
        w, h = upload.fit_size(width, height, 4096 * 4096, 65535)
        assert w * h <= 4096 * 4096 and w <= width and h <= height


def test_over_budget_frame_steps_quality_down_first():
    frame = photo_like(256, 256, seed=5)
    normal = upload.encode_for_upload(frame)
    budget = int(len(normal.data) * 0.9)
    encoded = upload.encode_for_upload(frame, max_bytes=budget)
    assert len(encoded.data) <= budget
    assert (encoded.width, encoded.height) == (256, 256)
    assert encoded.adjustments == (f"re-encoded as JPEG q90 to fit {budget / 1024:.3g} KiB",)


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


def test_a_frame_wider_than_jpeg_allows_is_fitted_not_refused():
    frame = photo_like(2, 70_000)
    encoded = upload.encode_for_upload(frame)
    assert encoded.mime_type == "image/jpeg" and encoded.width <= 65_500
    assert any("side limit" in note for note in encoded.adjustments)
    assert open_bytes(encoded.data).size == (encoded.width, encoded.height)


@pytest.mark.parametrize("shape", [(1, 1, 3), (37, 1001, 3), (300, 700, 4)])
def test_frames_reach_pillow_exactly_as_to_uint8_rounds_them(shape):
    frame = torch.rand(shape) * 1.2 - 0.1  # out-of-range values are clipped
    mode = "RGBA" if shape[-1] == 4 else "RGB"
    image = upload.to_image(frame, mode)
    assert image.mode == mode and image.size == (shape[1], shape[0])
    np.testing.assert_array_equal(np.asarray(image), upload.to_uint8(frame).numpy())
    half = frame.half()[::2]  # other dtypes and strides
    np.testing.assert_array_equal(np.asarray(upload.to_image(half, mode)), upload.to_uint8(half).numpy())


def test_the_size_estimate_only_skips_encodes_that_cannot_fit(monkeypatch):
    """White-box by necessity: the estimate's only outward effect is time (the benchmark
    measures it), so the encodes it skips are counted through the private encoder."""
    frame = torch.from_numpy(photo_pixels(2048, 2048, seed=3, noise=12.0).astype(np.float32) / 255.0)
    full = len(upload.encode_for_upload(frame).data)
    sizes = []
    real_encode = upload._encode

    def counting(image, quality):
        if image.size == (2048, 2048):
            sizes.append(quality)
        return real_encode(image, quality)

    monkeypatch.setattr(upload, "_encode", counting)
    for budget in (int(full * 0.6), int(full * 0.3), 30_000):
        sizes.clear()
        fast = upload.encode_for_upload(frame, max_bytes=budget)
        fast_attempts = list(sizes)
        with monkeypatch.context() as without:
            without.setattr(upload._JpegSizeEstimate, "worthwhile", classmethod(lambda cls, image: False))
            sizes.clear()
            slow = upload.encode_for_upload(frame, max_bytes=budget)
        assert (fast.data, fast.adjustments) == (slow.data, slow.adjustments), budget
        assert len(fast_attempts) < len(sizes), (fast_attempts, sizes)  # only doomed attempts were skipped
