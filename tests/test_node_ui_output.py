"""What a node hands ComfyUI for the editor: outputs plus the run's cost and request id; the session spend."""

from __future__ import annotations

import json

import pytest
import torch

from packloader import load_pack, pack_import

pack = load_pack()
spend = pack_import("client.spend")
TextToImage = pack.NODE_CLASS_MAPPINGS["RunComfyNanoBanana2TextToImage"]
Edit = pack.NODE_CLASS_MAPPINGS["RunComfyNanoBanana2Edit"]
pytestmark = pytest.mark.anyio


@pytest.fixture
def account(simulator, monkeypatch, tmp_path):
    monkeypatch.setenv("RUNCOMFY_API_BASE_URL", simulator.url)
    monkeypatch.setenv("RUNCOMFY_API_TOKEN", simulator.token)
    monkeypatch.delenv("RUNCOMFY_TOKEN", raising=False)
    monkeypatch.setenv("RUNCOMFY_CONFIG", str(tmp_path / "no-config.json"))
    return simulator


def widget_defaults(node_class) -> dict:
    return {name: spec[1]["default"] for name, spec in node_class.INPUT_TYPES()["required"].items()}


@pytest.mark.parametrize("node_class", [TextToImage, Edit])
def test_comfyui_calls_an_async_entry_point_and_no_partner_marker_is_set(node_class):
    assert node_class.FUNCTION == "run"
    assert "API_NODE" not in vars(node_class) and not any("API_NODE" in vars(base) for base in node_class.__mro__)


async def test_the_node_returns_its_outputs_and_the_runs_cost_for_the_editor(account):
    before = spend.summary()
    inputs = {**widget_defaults(TextToImage), "resolution": "2K", "num_images": 2, "prompt": "a lighthouse"}
    returned = await getattr(TextToImage(), TextToImage.FUNCTION)(unique_id="7", **inputs)

    images, info = returned["result"]
    (job,) = account.jobs.values()
    assert isinstance(images, torch.Tensor) and images.shape[0] == 2 and job.request_id in info
    (run,) = returned["ui"]["runcomfy_runs"]
    assert run["request_id"] == job.request_id and run["model_id"] == "google/nano-banana-2/text-to-image"
    assert run["status"] == "completed"
    assert run["cost_usd"] == pytest.approx(0.24)  # 2 images at the simulator's 2K price, as its result reports
    assert run["inputs"] == inputs, "the editor compares these with the widgets"
    json.dumps(returned["ui"])  # ComfyUI sends it over the websocket and keeps it in the history

    after = spend.summary()
    assert after.jobs == before.jobs + 1
    assert after.total_usd == pytest.approx(before.total_usd + 0.24)


async def test_the_edit_nodes_summary_holds_no_image_data(account):
    image = torch.rand(1, 64, 64, 3)
    inputs = {**widget_defaults(Edit), "resolution": "0.5K"}
    returned = await getattr(Edit(), Edit.FUNCTION)(unique_id="3", images=image, image_urls="", **inputs)
    (run,) = returned["ui"]["runcomfy_runs"]
    assert "image_urls" not in run["inputs"] and "data:" not in json.dumps(returned["ui"])
    assert run["inputs"]["resolution"] == "0.5K"
