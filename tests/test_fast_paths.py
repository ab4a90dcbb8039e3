"""The pack's fast paths give exactly what the straightforward ones give.

Decoding results straight into the IMAGE batch, converting upload frames in
strips, skipping JPEG encodes a sample shows cannot fit, and the learned poll
schedule: each is checked against the plain path or the rule it must keep.
"""

from __future__ import annotations

import asyncio
import io
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from packloader import load_pack, pack_import

upload = pack_import("nodes.upload_images")
results = pack_import("nodes.result_images")
pacing = pack_import("client.pacing")
client_pkg = pack_import("client")
responses = pack_import("client.responses")
Phase = responses.Phase


def photo(height: int, width: int, seed: int = 0, noise: float = 3.0) -> np.ndarray:
    """uint8 [H, W, 3]: a smooth colour field with grain (compresses like a photo)."""
    rng = np.random.default_rng(seed)
    small = Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8))
    field = np.asarray(small.resize((width, height), Image.Resampling.BICUBIC), dtype=np.float32)
    grain = rng.normal(0.0, noise, (height, width, 3)).astype(np.float32)
    return np.clip(field + grain, 0, 255).astype(np.uint8)


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


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


# ---------------------------------------------------------------- results straight into the batch


def test_every_kind_of_result_decodes_as_the_plain_path_does():
    rgb = photo(48, 64, seed=1)
    gray16 = (np.arange(48 * 64, dtype=np.uint16).reshape(48, 64) * 21).astype(np.uint16)
    rgba = np.dstack([rgb, np.linspace(0, 255, 64, dtype=np.uint8)[None, :].repeat(48, 0)])
    files = [
        encoded(Image.fromarray(rgb), "PNG"),
        encoded(Image.fromarray(rgb), "JPEG", quality=90),
        encoded(Image.fromarray(rgb), "WEBP", lossless=True),
        encoded(Image.fromarray(rgba, "RGBA"), "PNG"),
        encoded(Image.fromarray(rgb).quantize(16), "PNG", transparency=0),
        encoded(Image.fromarray(rgb), "PNG", transparency=tuple(int(v) for v in rgb[0, 0])),
        encoded(Image.fromarray(rgb[..., 0], "L"), "PNG"),
        encoded(Image.fromarray(gray16), "PNG"),
        encoded(Image.fromarray(rgb), "JPEG", quality=95, exif=exif_orientation(6)),  # rotated: 48 wide
    ]
    batch, notes = straight(files)
    expected, expected_notes = plain(files)
    assert batch.shape == expected.shape == (9, 64, 64, 3)
    assert torch.equal(batch, expected) and notes == expected_notes
    assert notes[-1] == "result 9 is 48×64, padded to 64×64"


def test_large_results_in_many_strips_match_too():
    files = [encoded(Image.fromarray(photo(1100, 700, seed=seed)), "PNG", compress_level=1) for seed in range(3)]
    batch, notes = straight(files)
    assert torch.equal(batch, plain(files)[0]) and notes == ()


def test_a_png_rotated_by_exif_after_its_pixels_is_known_upright_before_decoding():
    png = encoded(Image.fromarray(photo(20, 40, seed=2)), "PNG", exif=exif_orientation(8))
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


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


@pytest.mark.parametrize(
    "data, words",
    [
        (b"<!DOCTYPE html><html><body>403</body></html>", "result is not an image (looks like HTML"),
        (b"\x89PNG\r\n\x1a\n" + b"x" * 30, "header is corrupt"),
        (
            b"\x89PNG\r\n\x1a\n"
            + _chunk(b"IHDR", struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0))
            + _chunk(b"IDAT", zlib.compress(b""))
            + _chunk(b"IEND", b""),
            "large",
        ),
    ],
)
def test_inspecting_a_download_refuses_bad_files_at_once(data, words):
    with pytest.raises(ValueError, match="result") as inspected:
        results.inspect_result(data)
    assert words in str(inspected.value)


def test_a_truncated_result_is_a_clear_error():
    data = encoded(Image.fromarray(photo(64, 64)), "PNG")
    result = results.inspect_result(data[: len(data) // 2])  # the header is intact
    with pytest.raises(ValueError, match="truncated or corrupt"):
        results.results_to_tensor([result, results.inspect_result(data)])


# ---------------------------------------------------------------- upload encoding


@pytest.mark.parametrize("shape", [(1, 1, 3), (37, 1001, 3), (300, 700, 4)])
def test_frames_reach_pillow_exactly_as_to_uint8_rounds_them(shape):
    frame = torch.rand(shape) * 1.2 - 0.1  # out-of-range values are clipped
    mode = "RGBA" if shape[-1] == 4 else "RGB"
    image = upload._to_image(frame, mode)
    assert image.mode == mode and image.size == (shape[1], shape[0])
    np.testing.assert_array_equal(np.asarray(image), upload._to_uint8(frame).numpy())
    half = frame.half()[::2]  # other dtypes and strides
    np.testing.assert_array_equal(np.asarray(upload._to_image(half, mode)), upload._to_uint8(half).numpy())


def test_the_size_estimate_only_skips_encodes_that_cannot_fit(monkeypatch):
    frame = torch.from_numpy(photo(2048, 2048, seed=3, noise=12.0).astype(np.float32) / 255.0)
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


# ---------------------------------------------------------------- polling


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_durations_learn_their_spread():
    durations = pacing.RunDurations()
    assert durations.expected("k") is None and durations.spread("k") is None
    for seconds in (5.0, 7.0, 5.0, 7.0, 5.0, 7.0):
        durations.observe("k", seconds)
    assert 5.0 < durations.expected("k") < 7.0 and 0.8 < durations.spread("k") < 2.0


@pytest.mark.parametrize("ends_after", [4.3, 5.0, 5.6, 6.2, 8.0])
def test_a_learned_job_stays_within_two_calls_a_second_and_looks_closely_near_its_end(ends_after):
    clock = FakeClock()
    created = clock.now
    pacer = pacing.PollPacer(expected_run=5.0, spread=0.4, clock=clock)
    clock.now += 1.0  # queued for a second, then seen running
    pacer.running_since, pacer.start_uncertainty = clock.now, 0.3
    end = pacer.running_since + ends_after
    polls = []
    while True:
        pacer.spend()
        polls.append(clock.now)
        if clock.now >= end:
            break
        clock.now += pacer.next_delay(Phase.RUNNING)
    assert (len(polls) + 1) / (polls[-1] - created) <= 2.0  # the /result call included
    assert polls[-1] - end <= pacing.PollPacer.UNLEARNED_INTERVAL
    if abs(ends_after - 5.0) <= 0.6:
        assert polls[-1] - end < 0.35  # where the end was likely, polls were close together


def run_seconds(created_at, finished_at):
    body = {"status": "completed", "created_at": created_at, "finished_at": finished_at}
    return responses.parse_result(body, "r-1").run_seconds


def test_the_server_timestamps_give_the_duration():
    assert run_seconds("2025-01-01T00:00:00.250Z", "2025-01-01T00:00:06.750Z") == 6.5
    assert run_seconds(None, "2025-01-01T00:00:06Z") is None
    assert run_seconds("yesterday", "2025-01-01T00:00:06Z") is None


@pytest.mark.anyio
async def test_a_job_teaches_its_run_duration(simulator):
    settings = client_pkg.Settings(base_url=simulator.url, token=simulator.token, token_source="test")
    simulator.script_next_jobs(queue_seconds=0.3, run_seconds=1.2)
    async with client_pkg.RunComfyClient(settings) as client:
        jobs = client_pkg.Jobs(client)
        await jobs.run("google/nano-banana-2/text-to-image", {"prompt": "x", "resolution": "0.5K"})
        learned = jobs.durations.expected(("google/nano-banana-2/text-to-image", "0.5K", 1))
    assert learned == pytest.approx(1.2, abs=0.3)  # the start is only known to a poll gap


def test_what_was_learned_outlives_each_prompts_event_loop(simulator, monkeypatch, tmp_path):
    monkeypatch.setenv("RUNCOMFY_API_BASE_URL", simulator.url)
    monkeypatch.setenv("RUNCOMFY_API_TOKEN", simulator.token)
    monkeypatch.delenv("RUNCOMFY_TOKEN", raising=False)
    monkeypatch.setenv("RUNCOMFY_CONFIG", str(tmp_path / "absent.json"))
    node = load_pack().NODE_CLASS_MAPPINGS["RunComfyNanoBanana2TextToImage"]()
    widgets = {name: spec[1]["default"] for name, spec in node.INPUT_TYPES()["required"].items()}
    widgets.update(prompt="a lighthouse", resolution="0.5K")
    kind = ("google/nano-banana-2/text-to-image", "0.5K", widgets["num_images"])
    simulator.script_next_jobs(queue_seconds=0.1, run_seconds=0.6, count=2)
    for seed in (1, 2):  # ComfyUI runs each prompt with asyncio.run: a new loop, a new pooled client
        asyncio.run(node.generate(unique_id="7", **dict(widgets, seed=seed)))

    async def durations_on_a_new_loop():
        return client_pkg.shared_jobs(client_pkg.load_settings()).durations

    learned = asyncio.run(durations_on_a_new_loop())
    assert learned.spread(kind) is not None  # both prompts taught the same memory
