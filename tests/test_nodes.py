"""The two ComfyUI nodes, run without ComfyUI against the simulator."""

from __future__ import annotations

import asyncio
import json
import io
import sys
import types

import anyio
import numpy as np
import pytest
import torch
from PIL import Image

from helpers import photo_batch, widget_defaults
from packloader import load_pack, pack_import

pack = load_pack()
schemas = pack_import("client.model.schemas")
errors = pack_import("client.errors")
spend = pack_import("client.ledger.spend")
client_pkg = pack_import("client")
comfy_runtime = pack_import("nodes.comfy_runtime")
edit_module = pack_import("nodes.edit")
sim_images = pack_import("simulator.images")

TextToImage = pack.NODE_CLASS_MAPPINGS["RunComfyNanoBanana2TextToImage"]
Edit = pack.NODE_CLASS_MAPPINGS["RunComfyNanoBanana2Edit"]
pytestmark = pytest.mark.anyio


def submitted_inputs(simulator):
    (job,) = simulator.jobs.values()
    return job


# -- definitions match the model schemas -------------------------------------------


@pytest.mark.parametrize("node_class, model_id", [(TextToImage, schemas.TEXT_TO_IMAGE), (Edit, schemas.EDIT)])
def test_widgets_match_the_schema_field_for_field(node_class, model_id):
    schema = schemas.get_schema(model_id)
    required = node_class.INPUT_TYPES()["required"]
    expected_names = [name for name in schema.properties if name != "image_urls"]
    assert list(required) == expected_names
    for name, (kind, options) in required.items():
        spec = schema.properties[name]
        assert options["default"] == spec["default"], name
        assert options["tooltip"], name
        if spec["type"] == "string" and "enum" in spec:
            assert kind == spec["enum"]
        elif spec["type"] == "string":
            assert kind == "STRING" and options["multiline"]
        elif spec["type"] == "boolean":
            assert kind == "BOOLEAN"
        elif "enum" in spec:
            assert kind == "INT" and (options["min"], options["max"], options["step"]) == (min(spec["enum"]), max(spec["enum"]), 1)
            assert list(range(options["min"], options["max"] + 1)) == spec["enum"]
        elif name == "seed":
            assert kind == "INT" and options["control_after_generate"] and options["min"] == 0
        else:
            assert kind == "INT" and (options["min"], options["max"]) == (spec["minimum"], spec["maximum"])


def test_edit_adds_image_sockets_and_urls():
    optional = Edit.INPUT_TYPES()["optional"]
    sockets = ["images", "images_2", "images_3", "images_4"] + [f"images_{n}" for n in range(5, 21)]
    assert [name for name, spec in optional.items() if spec[0] == "IMAGE"] == sockets  # the old four first
    assert optional["image_urls"][0] == "STRING" and optional["image_urls"][1]["multiline"]
    assert all(spec[1].get("tooltip") for spec in optional.values())


@pytest.mark.parametrize("node_class", [TextToImage, Edit])
def test_node_surface(node_class):
    assert node_class.RETURN_TYPES == ("IMAGE", "STRING")
    assert len(node_class.OUTPUT_TOOLTIPS) == 2
    assert node_class.CATEGORY == "RunComfy/Nano Banana 2"
    assert not getattr(node_class, "API_NODE", False) and node_class.DESCRIPTION  # no partner-node gate
    assert asyncio.iscoroutinefunction(getattr(node_class, node_class.FUNCTION))
    assert node_class.INPUT_TYPES()["hidden"] == {"unique_id": "UNIQUE_ID"}
    assert pack.NODE_DISPLAY_NAME_MAPPINGS[node_class.__name__]


@pytest.mark.parametrize("node_class", [TextToImage, Edit])
def test_empty_prompt_is_refused_when_queued(node_class):
    assert node_class.VALIDATE_INPUTS(prompt="  \n") == "prompt is empty: describe the image you want"
    assert node_class.VALIDATE_INPUTS(prompt="a cat") is True
    assert node_class.VALIDATE_INPUTS(prompt=None) is True  # linked from another node: checked at run time


def test_no_widget_can_hold_a_token():
    for node_class in (TextToImage, Edit):
        types = node_class.INPUT_TYPES()
        names = [*types["required"], *types.get("optional", {})]
        assert not any("token" in name or "key" in name for name in names)


# -- text to image -------------------------------------------------------------------


@pytest.mark.parametrize(
    "num_images, aspect_ratio, resolution",
    [(1, "auto", "1K"), (2, "16:9", "0.5K"), (3, "9:16", "0.5K"), (4, "21:9", "0.5K"), (1, "3:4", "2K")],
)
async def test_text_to_image_returns_comfy_images(account, num_images, aspect_ratio, resolution):
    inputs = {**widget_defaults(TextToImage), "num_images": num_images, "aspect_ratio": aspect_ratio,
              "resolution": resolution, "prompt": "a lighthouse"}
    images, info = await TextToImage().generate(unique_id="7", **inputs)
    width, height = sim_images.expected_size(aspect_ratio, resolution)
    assert images.shape == (num_images, height, width, 3) and images.dtype == torch.float32
    assert 0.0 <= images.min() and images.max() <= 1.0 and images.std() > 0.01  # a real picture
    (job,) = account.jobs.values()
    assert job.request_id in info and "$" in info
    assert job.inputs["seed"] == 0 and job.inputs["num_images"] == num_images


async def test_a_list_of_prompts_runs_as_concurrent_jobs(account):
    node = TextToImage()
    base = {**widget_defaults(TextToImage), "resolution": "0.5K"}
    results = await asyncio.gather(*(node.generate(unique_id="1", **{**base, "prompt": f"p{n}"}) for n in range(4)))
    assert [images.shape[0] for images, _ in results] == [1, 1, 1, 1]
    assert len(account.requests(route="submit")) == 4
    assert len({info.split("request ")[1].split(" ")[0] for _, info in results}) == 4


async def test_a_failed_job_is_an_error_not_a_black_image(account):
    account.script_next_jobs("blocked")
    with pytest.raises(errors.JobBlockedError, match="safety filter"):
        await TextToImage().generate(unique_id="1", **widget_defaults(TextToImage))


# -- edit --------------------------------------------------------------------------------


async def test_edit_sends_every_frame_of_every_socket_in_order(account):
    batch = torch.cat([photo_batch(300, 400, seed=s) for s in range(3)])
    other = photo_batch(500, 500, seed=9)
    inputs = {**widget_defaults(Edit), "resolution": "0.5K"}
    images, info = await Edit().generate(
        unique_id="3", images=batch, images_3=other, image_urls="# a comment\n\n", **inputs
    )
    job = submitted_inputs(account)
    assert [image.size for image in job.images] == [(400, 300)] * 3 + [(500, 500)]
    assert images.shape[0] == 1 and images.shape[-1] == 3
    assert job.request_id in info


async def test_edit_keeps_transparency_of_rgba_input(account):
    rgba = photo_batch(256, 256, channels=4)
    references, _ = await edit_module.encode_references({"images": rgba}, [])
    mime, payload = references[0].mime, references[0].data
    with Image.open(io.BytesIO(payload)) as sent:
        assert sent.mode == "RGBA" and mime in ("image/png", "image/webp")
        alpha = np.asarray(sent)[..., 3]
    assert alpha[:, :16].mean() < 20 and alpha[:, -16:].mean() > 235  # the transparency gradient survived
    images, _ = await Edit().generate(unique_id="3", images=rgba, **{**widget_defaults(Edit), "resolution": "0.5K"})
    assert submitted_inputs(account).images[0].size == (256, 256) and images.shape[-1] == 3


async def test_edit_fits_an_oversized_reference_and_says_so(account):
    huge = photo_batch(4500, 5000)
    inputs = {**widget_defaults(Edit), "resolution": "0.5K"}
    images, info = await Edit().generate(unique_id="3", images=huge, **inputs)
    (sent,) = submitted_inputs(account).images
    assert sent.size[0] * sent.size[1] <= 4096 * 4096 and sent.size[0] / sent.size[1] == pytest.approx(5000 / 4500, rel=0.01)
    assert "downscaled" in info
    assert images.shape[0] == 1


async def test_edit_with_hosted_urls_only(account):
    first, _ = await TextToImage().generate(unique_id="1", **{**widget_defaults(TextToImage), "resolution": "0.5K"})
    url = next(iter(account.jobs.values())).request_id
    hosted = [r.path for r in account.requests(route="file")][0]
    images, _ = await Edit().generate(
        unique_id="2", image_urls=f"{account.url}{hosted}\n", **{**widget_defaults(Edit), "resolution": "0.5K"}
    )
    assert url and images.shape[0] == 1
    assert len(account.requests(route="submit")) == 2


# -- nothing paid for bad input --------------------------------------------------------------


@pytest.mark.parametrize(
    "node_class, extra, words",
    [
        (TextToImage, {"prompt": "  "}, "prompt"),
        (Edit, {}, "No reference image"),
        (Edit, {"images": torch.rand(21, 8, 8, 3)}, "at most 20"),
        (Edit, {"images": torch.rand(16, 8, 8, 3), "images_2": torch.rand(4, 9, 9, 3), "image_urls": "https://a.example/1.png"}, "21 reference images"),
        (Edit, {"images": torch.full((1, 8, 8, 3), float("nan"))}, "NaN"),
        (Edit, {"images": torch.rand(1, 8, 8, 5)}, "channel"),
        (Edit, {"image_urls": "not a url"}, "image_urls"),
    ],
)
async def test_bad_inputs_fail_before_any_request(account, node_class, extra, words):
    with pytest.raises((errors.RunComfyError, ValueError), match=words) as caught:
        await node_class().generate(unique_id="1", **{**widget_defaults(node_class), **extra})
    assert "\n" not in str(caught.value)
    assert account.requests() == []


async def test_missing_token_stops_before_anything_is_sent(account, monkeypatch):
    monkeypatch.delenv("RUNCOMFY_API_TOKEN")
    for node_class, extra in ((TextToImage, {}), (Edit, {"images": photo_batch(64, 64)})):
        with pytest.raises(errors.MissingTokenError, match="RUNCOMFY_API_TOKEN"):
            await node_class().generate(unique_id="1", **{**widget_defaults(node_class), **extra})
    assert account.requests() == []


# -- Stop -------------------------------------------------------------------------------------


async def test_stop_while_queued_cancels_the_remote_job_once(account, monkeypatch):
    account.script_next_jobs("queued_forever")
    monkeypatch.setattr(comfy_runtime, "processing_interrupted", lambda: bool(account.jobs))
    with anyio.fail_after(10), pytest.raises(errors.JobCancelledError, match="queued"):
        await TextToImage().generate(unique_id="1", **widget_defaults(TextToImage))
    assert len(account.requests(route="cancel")) == 1
    (request_id,) = account.jobs
    assert account.state(request_id) == "cancelled"
    assert account.requests(route="file") == []


async def test_stop_before_the_node_starts_submits_nothing(account, monkeypatch):
    monkeypatch.setattr(comfy_runtime, "processing_interrupted", lambda: True)
    with anyio.fail_after(10), pytest.raises(errors.JobCancelledError, match="nothing was billed"):
        await TextToImage().generate(unique_id="1", **widget_defaults(TextToImage))
    assert account.requests() == []


async def test_stop_reaches_every_waiting_node(account, monkeypatch):
    account.script_next_jobs("queued_forever", count=3)
    monkeypatch.setattr(comfy_runtime, "processing_interrupted", lambda: len(account.jobs) == 3)
    node = TextToImage()
    with anyio.fail_after(10):
        outcomes = await asyncio.gather(
            *(node.generate(unique_id=str(n), **{**widget_defaults(TextToImage), "prompt": f"p{n}"}) for n in range(3)),
            return_exceptions=True,
        )
    assert all(isinstance(outcome, errors.JobCancelledError) for outcome in outcomes)
    assert len(account.requests(route="cancel")) == 3
    assert all(account.state(request_id) == "cancelled" for request_id in account.jobs)


# -- caching and the account ---------------------------------------------------------------------


def test_is_changed_follows_the_account_not_the_token(account, monkeypatch):
    first = TextToImage.IS_CHANGED(**widget_defaults(TextToImage))
    assert first == TextToImage.IS_CHANGED(**widget_defaults(TextToImage))
    assert account.token not in first
    monkeypatch.setenv("RUNCOMFY_API_TOKEN", "another-account-token")
    assert TextToImage.IS_CHANGED() != first


class FakeComfy:
    """Stand-ins for the parts of ComfyUI the nodes touch, with ComfyUI's quirk:
    a progress update raises InterruptProcessingException and clears the Stop flag."""

    class InterruptProcessingException(Exception):
        pass

    def __init__(self) -> None:
        self.stop_pressed = False
        self.stop_inside_next_update = False
        self.progress: list[int] = []
        fake = self

        class ProgressBar:
            def __init__(self, total, node_id=None):
                self.total = total

            def update_absolute(self, value, total=None, preview=None):
                fake.progress.append(value)
                if fake.stop_inside_next_update:  # the race: Stop lands just before this update
                    fake.stop_inside_next_update, fake.stop_pressed = False, True
                if fake.stop_pressed:  # ComfyUI's hook: read, clear, raise
                    fake.stop_pressed = False
                    raise fake.InterruptProcessingException()

        self.utils = types.SimpleNamespace(ProgressBar=ProgressBar)
        self.model_management = types.SimpleNamespace(
            InterruptProcessingException=self.InterruptProcessingException,
            processing_interrupted=lambda: self.stop_pressed,
            interrupt_current_processing=lambda value=True: setattr(self, "stop_pressed", value),
        )

    def install(self, monkeypatch) -> None:
        package = types.ModuleType("comfy")
        package.utils, package.model_management = self.utils, self.model_management
        monkeypatch.setitem(sys.modules, "comfy", package)
        monkeypatch.setitem(sys.modules, "comfy.utils", self.utils)
        monkeypatch.setitem(sys.modules, "comfy.model_management", self.model_management)


async def test_stop_in_comfyui_survives_the_progress_hook_and_interrupts(account, monkeypatch):
    comfy = FakeComfy()
    comfy.install(monkeypatch)
    account.script_next_jobs("queued_forever", queue_seconds=0.2)

    async def press_stop_once_queued():
        while not account.jobs:
            await asyncio.sleep(0.01)
        comfy.stop_pressed = True

    presser = asyncio.create_task(press_stop_once_queued())
    with anyio.fail_after(10), pytest.raises(errors.JobCancelledError) as ended:  # the job's error: /history keeps it
        await TextToImage().generate(unique_id="5", **widget_defaults(TextToImage))
    await presser
    assert len(account.requests(route="cancel")) == 1
    assert account.state(next(iter(account.jobs))) == "cancelled"
    assert ended.value.request_id == next(iter(account.jobs)) and "nothing is billed" in str(ended.value)
    assert comfy.stop_pressed  # still set for every other waiting node to see
    assert comfy.progress == sorted(comfy.progress) and len(comfy.progress) == len(set(comfy.progress))


async def test_stop_swallowed_by_the_progress_hook_is_restored(account, monkeypatch):
    comfy = FakeComfy()
    comfy.install(monkeypatch)
    account.script_next_jobs("never_finishes", queue_seconds=0.0)

    async def stop_during_the_next_update_once_running():
        while not account.jobs or account.state(next(iter(account.jobs))) != "in_progress":
            await asyncio.sleep(0.01)
        comfy.stop_inside_next_update = True

    arm = asyncio.create_task(stop_during_the_next_update_once_running())
    with anyio.fail_after(15), pytest.raises(errors.JobCancelledError) as ended:
        await TextToImage().generate(unique_id="6", **widget_defaults(TextToImage))
    await arm
    assert ended.value.request_id == next(iter(account.jobs)) and "may be billed" in str(ended.value)
    assert not comfy.stop_inside_next_update  # the hook really fired inside an update
    assert len(account.requests(route="cancel")) == 1
    assert comfy.stop_pressed


# -- a paid job survives the editor and its own results ----------------------------------------


async def test_a_failing_progress_bar_or_status_call_never_loses_the_job(account, monkeypatch):
    comfy = FakeComfy()
    comfy.install(monkeypatch)

    def broken_update(self, value, total=None, preview=None):
        raise RuntimeError("the websocket is gone")

    monkeypatch.setattr(comfy.utils.ProgressBar, "update_absolute", broken_update)
    server = types.ModuleType("server")
    server.PromptServer = types.SimpleNamespace(instance=types.SimpleNamespace(
        send_progress_text=lambda text, node_id: (_ for _ in ()).throw(ConnectionResetError("gone"))))
    monkeypatch.setitem(sys.modules, "server", server)
    images, info = await TextToImage().generate(unique_id="8", **{**widget_defaults(TextToImage), "resolution": "0.5K"})
    assert images.shape[0] == 1 and "request" in info
    assert len(account.requests(route="submit")) == 1


@pytest.mark.parametrize(
    "content, words",
    [("gif", "GIF"), ("corrupt_png", "corrupt"), ("huge_png", "large")],
)
async def test_a_result_that_is_no_usable_image_is_an_error_with_the_request_id(account, content, words):
    account.script_next_jobs("completed", file_content=content)
    with pytest.raises(errors.ResultError, match=words) as caught:
        await TextToImage().generate(unique_id="1", **{**widget_defaults(TextToImage), "resolution": "0.5K"})
    (request_id,) = account.jobs
    assert caught.value.request_id == request_id and request_id in str(caught.value)


async def test_a_batch_too_large_to_allocate_is_an_error_with_the_request_id(account, monkeypatch):
    results = pack_import("nodes.result_images")
    monkeypatch.setattr(results, "MAX_BATCH_BYTES", 8 * 1024 * 1024)  # stands in for the 2 GiB bound
    account.script_next_jobs("completed", aspect_ratios=["21:9", "9:16"])
    inputs = {**widget_defaults(TextToImage), "resolution": "0.5K", "num_images": 2}
    with pytest.raises(errors.ResultError, match="IMAGE batch") as caught:
        await TextToImage().generate(unique_id="1", **inputs)
    (request_id,) = account.jobs
    assert request_id in str(caught.value) and "Result by Request ID" in str(caught.value)


@pytest.mark.parametrize("prompt", ["\u200b\u200b", "\0", " \u2060\ufeff "])
def test_a_prompt_of_invisible_characters_is_refused_when_queued(prompt):
    assert TextToImage.VALIDATE_INPUTS(prompt=prompt) == "prompt is empty: describe the image you want" or \
        TextToImage.VALIDATE_INPUTS(prompt=prompt).startswith("prompt contains NUL")


# -- what the editor is told, and what outlives a prompt ------------------------------------


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


async def test_a_node_runs_with_nothing_but_the_cli_sign_in_in_home(simulator, monkeypatch, tmp_path):
    """After `runcomfy login` a user's HOME holds only the CLI's token.json; pointed at the
    simulator (the one setting a test needs), a node runs with no other setup."""
    home = tmp_path / "home"
    token_file = home / ".config" / "runcomfy" / "token.json"
    token_file.parent.mkdir(parents=True)
    written = json.dumps({"access_token": simulator.token, "refresh_token": None, "expires_at": None,
                          "user_email": None}, indent=2)
    token_file.write_text(written)
    token_file.chmod(0o600)
    for name in ("RUNCOMFY_API_TOKEN", "RUNCOMFY_TOKEN", "RUNCOMFY_CONFIG", "RUNCOMFY_CONFIG_DIR", "RUNCOMFY_DATA_DIR",
                 "XDG_CONFIG_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("RUNCOMFY_API_BASE_URL", simulator.url)
    images, info = await TextToImage().generate(unique_id="3", **{**widget_defaults(TextToImage), "prompt": "a kite"})
    (job,) = simulator.jobs.values()
    assert images.shape[0] == 1 and images.std() > 0.01 and job.request_id in info
    assert [r.account for r in simulator.requests(route="submit")] == [simulator.account_name]
    assert token_file.read_text() == written  # read, never rewritten
