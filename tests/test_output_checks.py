"""Honest outputs, against the simulator: sizes against what was asked, identical images; never an error.

The simulator's ``output_resolution`` knob renders at another resolution than
asked (what users saw: 2K asked, the 1K 1376x768 delivered), ``aspect_ratios``
another shape, ``identical_images`` one picture for every image of a job.
The node must still return every image, and say so in ``info`` and on its
status line.
"""

from __future__ import annotations

import sys
import types

import pytest

from helpers import widget_defaults
from packloader import load_pack, pack_import

pack = load_pack()
sizes = pack_import("client.model.output_sizes")
sim_images = pack_import("simulator.images")
TextToImage = pack.NODE_CLASS_MAPPINGS["RunComfyNanoBanana2TextToImage"]
Edit = pack.NODE_CLASS_MAPPINGS["RunComfyNanoBanana2Edit"]
ResultByRequestId = pack.NODE_CLASS_MAPPINGS["RunComfyNanoBanana2ResultByRequestId"]
pytestmark = pytest.mark.anyio


@pytest.fixture
def status_lines(monkeypatch):
    """What the node shows on its status line, through a stand-in for ComfyUI's PromptServer."""
    lines: list[str] = []
    server = types.ModuleType("server")
    server.PromptServer = types.SimpleNamespace(instance=types.SimpleNamespace(
        send_progress_text=lambda text, node_id: lines.append(text)))
    monkeypatch.setitem(sys.modules, "server", server)
    return lines


def run_inputs(**changes):
    return {**widget_defaults(TextToImage), "prompt": "a lighthouse", **changes}


async def test_the_right_size_is_confirmed_in_info_and_not_warned_about(account, status_lines):
    images, info = await TextToImage().generate(unique_id="1", **run_inputs(resolution="0.5K", aspect_ratio="16:9",
                                                                           num_images=2))
    assert images.shape == (2, 384, 688, 3)
    assert "size as asked: asked 0.5K 16:9, got 688×384 (all 2 images)" in info
    assert "not the size asked" not in info and "identical" not in info
    assert "size" not in status_lines[-1]


async def test_a_2k_request_served_at_the_1k_size_is_said_plainly_and_still_returned(account, status_lines):
    account.script_next_jobs("completed", output_resolution="1K")
    images, info = await TextToImage().generate(unique_id="1", **run_inputs(resolution="2K", aspect_ratio="16:9"))
    assert images.shape == (1, 768, 1376, 3)  # the paid image, as it came
    line = "image 1 is not the size asked: asked 2K 16:9, got 1376×768, not the 2752×1536 Nano Banana 2 makes"
    assert line in info and "(the 1K 16:9 size)" in info
    assert line in status_lines[-1] and account.requests(route="submit")


async def test_a_wrong_shape_is_said_for_that_image_only(account, status_lines):
    account.script_next_jobs("completed", aspect_ratios=["4:3", "3:4"])
    images, info = await TextToImage().generate(unique_id="1", **run_inputs(resolution="0.5K", aspect_ratio="4:3",
                                                                           num_images=2))
    assert images.shape[0] == 2
    assert "image 1 size as asked: asked 0.5K 4:3, got 600×448" in info
    assert "image 2 is not the size asked: asked 0.5K 4:3, got 448×600" in info and "(the 0.5K 3:4 size)" in info
    assert "image 2 is not the size asked" in status_lines[-1] and "image 1" not in status_lines[-1]


async def test_auto_checks_the_resolution_only(account, status_lines):
    account.script_next_jobs("completed", output_resolution="0.5K")
    _, info = await TextToImage().generate(unique_id="1", **run_inputs(resolution="1K", aspect_ratio="auto"))
    assert "image 1 is not the size asked: asked 1K, ratio auto, got 512×512 (the 0.5K 1:1 size)" in info
    _, info = await TextToImage().generate(unique_id="1", **run_inputs(resolution="0.5K", aspect_ratio="auto",
                                                                      seed=1))
    assert "size as asked: asked 0.5K, ratio auto, got 512×512" in info


async def test_identical_images_are_reported_in_info_and_on_the_status_line(account, status_lines):
    account.script_next_jobs("completed", identical_images=True)
    images, info = await TextToImage().generate(unique_id="1", **run_inputs(resolution="0.5K", num_images=3))
    assert images.shape[0] == 3 and bool((images[0] == images[2]).all())
    note = "images 1, 2 and 3 are identical (same pixels): RunComfy returned one picture 3 times"
    assert note in info and note in status_lines[-1]


async def test_different_images_are_not_called_identical(account, status_lines):
    _, info = await TextToImage().generate(unique_id="1", **run_inputs(resolution="0.5K", num_images=4))
    assert "identical" not in info and "identical" not in status_lines[-1]


async def test_a_collected_result_reports_duplicates_without_knowing_the_ask(account, status_lines):
    account.script_next_jobs("completed", identical_images=True)
    _, info = await TextToImage().generate(unique_id="1", **run_inputs(resolution="0.5K", num_images=2))
    request_id = next(iter(account.jobs))
    _, collected = await ResultByRequestId().generate(unique_id="2", request_id=request_id)
    assert "images 1 and 2 are identical" in collected and "asked" not in collected


def test_the_size_table_is_the_models():
    assert sizes.expected_size("2K", "16:9") == (2752, 1536)
    assert sizes.expected_size("4K", "16:9") == (5504, 3072)
    assert sizes.expected_size("0.5K", "21:9") == (792, 336)
    assert sizes.expected_size("1K", "auto") is None
    for ratio in sim_images.SIZES_1K:  # the simulator renders what the model makes (kept apart, same facts)
        for resolution in sizes.SCALE:
            assert sizes.expected_size(resolution, ratio) == sim_images.expected_size(ratio, resolution)
    assert sizes.check_size("2K", "16:9", (2752, 1536)).matches
    assert sizes.check_size("2K", "16:9", (2736, 1536)).matches  # within the model's rounding
    assert not sizes.check_size("2K", "16:9", (1376, 768)).matches
    assert not sizes.check_size("1K", "16:9", (768, 1376)).matches
