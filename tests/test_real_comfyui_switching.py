"""Switching from Comfy's Nano Banana 2 node in real editors, against the simulator (issue 18).

One ComfyUI and one simulator per editor configuration (1.27.10; 1.58.1 with Nodes 2.0 off
and on), a fresh browser profile, the token in ComfyUI's environment; tests/switching_session.py
does what the user does (see its docstring) and reports the graph after each step. The
checks here hold what it saw against the plan the pack builds (switching/plan.py, the one
mapping table) and against the images the simulator received, each reference its own
size (and colour) so their order is proven by the image data it decoded.

The October 2025 ComfyUI has neither of Comfy's Nano Banana 2 node types
(``comfy_api_nodes/nodes_gemini.py`` there holds GeminiNode, GeminiImage and
GeminiInputFiles only), so on this backend Comfy's node is always a missing node: the
switch works from the saved widget values and socket names. Screenshots are written to
each configuration's ``shots`` folder (the path is printed); docs/editor-switch-menu.png,
editor-switch-report.png, editor-switched.png and editor-references-6.png come from 1.58.1,
the ``-nodes-2`` ones from 1.58.1 with Nodes 2.0.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import pytest

from packloader import PACK_ROOT, pack_import
from test_real_comfyui import (
    EDIT, EDITORS, FRONTEND_ROOT, SIM_QUEUE_SECONDS, SIM_RUN_SECONDS, WORKFLOW_DIR, _skip_reason, find_chromium,
    prepare_base_directory, run_editor_session, running_comfyui, skip_without_editor, usd,
)

Image = pytest.importorskip("PIL.Image")

pytestmark = [pytest.mark.comfyui, pytest.mark.skipif(_skip_reason() is not None, reason=_skip_reason() or "")]

SESSION = Path(__file__).with_name("switching_session.py")
COMFY_WORKFLOW = PACK_ROOT / "docs" / "examples" / "comfy_nano_banana_2_edit.json"
OLD_WORKFLOW = WORKFLOW_DIR / "nano_banana_2_multi_reference_edit.json"  # saved with images … images_4
COMFY_ID = 4  # Comfy's node in the example
# The six references of the built edit node: each its own colour (seen in the screenshot) and size.
REFERENCES = [((230, 20, 20), (640, 480)), ((20, 200, 20), (320, 320)), ((20, 20, 230), (512, 288)),
              ((240, 220, 0), (200, 400)), ((220, 0, 220), (384, 256)), ((0, 210, 210), (256, 512))]
# What the example's three references are (example.png, its 320×320 crop, a 512×288 strip).
EXAMPLE_REFERENCES = [(768, 768), (320, 320), (512, 288)]


def write_references(folder: Path) -> list[str]:
    names = []
    for number, (colour, size) in enumerate(REFERENCES, 1):
        name = f"reference_{number}.png"
        Image.new("RGB", size, colour).save(folder / name)
        names.append(name)
    return names


@pytest.fixture(scope="module", params=EDITORS)
def session(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    which, nodes_2 = request.param
    skip_without_editor(which)
    label = f"{which}-editor" + ("-nodes-2.0" if nodes_2 else "")
    base = tmp_path_factory.mktemp(f"comfyui-switching-{label}")
    prepare_base_directory(base)
    references = write_references(base / "input")
    extra = ("--front-end-root", FRONTEND_ROOT) if which == "current" else ()
    server = pack_import("simulator.server")
    with server.Simulator(queue_seconds=SIM_QUEUE_SECONDS, run_seconds=SIM_RUN_SECONDS) as sim:
        env = {"RUNCOMFY_API_BASE_URL": sim.url, "RUNCOMFY_WWW_BASE_URL": sim.www_url,
               "RUNCOMFY_ACCOUNT_BASE_URL": sim.api_url, "RUNCOMFY_API_TOKEN": sim.token,
               "RUNCOMFY_CONFIG": str(base / "runcomfy-config.json"), "RUNCOMFY_DATA_DIR": str(base / "data")}
        with running_comfyui(base, env, *extra) as comfy:
            assert comfy.http.post("/settings/Comfy.VueNodes.Enabled", json=nodes_2).status_code == 200
            object_info = comfy.http.get("/object_info").json()
            price = comfy.http.get("/runcomfy-nb2/price",
                                   params={"node_type": EDIT, "resolution": "1K", "num_images": "1"}).json()
            seen = run_editor_session(comfy, {
                "url": comfy.url + "/", "chromium": find_chromium(), "nodes_2": nodes_2,
                "comfy_workflow": str(COMFY_WORKFLOW), "old_workflow": str(OLD_WORKFLOW), "references": references,
                "prompt": "Put the six colour cards in a row, in the order given.", "shots": str(base / "shots"),
            }, f"{label} switching", script=SESSION)
        jobs = sorted(sim.jobs.values(), key=lambda job: job.seq)
        yield {"seen": seen, "jobs": jobs, "submits": sim.requests(route="submit"), "object_info": object_info,
               "price": price, "nodes_2": nodes_2, "which": which}


def comfy_example() -> dict[str, Any]:
    return json.loads(COMFY_WORKFLOW.read_text(encoding="utf-8"))


def comfy_plan() -> Any:
    """The plan the pack builds for the example's node, from what the workflow file saved."""
    node = next(node for node in comfy_example()["nodes"] if node["id"] == COMFY_ID)
    linked = [slot["name"] for slot in node["inputs"] if slot.get("link") is not None]
    outputs = [len(slot.get("links") or []) for slot in node["outputs"]]
    return pack_import("switching.plan").build_plan(node["type"], node["widgets_values"], linked, outputs)


def node(state: dict[str, Any], node_id: int) -> dict[str, Any]:
    return next(entry for entry in state["nodes"] if entry["id"] == node_id)


def linked(entry: dict[str, Any]) -> dict[str, list[int]]:
    return {slot["name"]: slot["from"] for slot in entry["inputs"] if slot["from"] is not None}


def received(job: Any) -> list[tuple[int, int]]:
    """The size of each reference image the simulator received (it decoded each one; it keeps
    the size and digest and drops the bytes once the job is rendered). Every reference here has
    a size of its own, so the sizes prove the order."""
    assert all(image.size is not None for image in job.images), "references travel inline"
    assert len({image.digest for image in job.images}) == len(job.images), "each reference is a different image"
    return [tuple(image.size) for image in job.images]


def test_comfys_node_is_a_missing_node_on_this_backend(session: dict[str, Any]):
    info = session["object_info"]
    assert "GeminiNanoBanana2V2" not in info and "GeminiNanoBanana2" not in info
    opened = session["seen"]["switch"]["opened"]
    assert opened["unknown"] == ["GeminiNanoBanana2V2"], opened["unknown"]
    assert any("GeminiNanoBanana2V2" in text for text in session["seen"]["switch"]["missing_notice"])


def test_the_switch_keeps_links_place_title_colour_group_and_values(session: dict[str, Any]):
    seen, plan = session["seen"]["switch"], comfy_plan()
    before, after = node(seen["opened"], COMFY_ID), node(seen["switched"], COMFY_ID)
    assert after["type"] == EDIT == plan.target_type
    assert after["pos"] == before["pos"] and after["title"] == "Picture-book edit"
    assert (after["color"], after["bgcolor"], after["mode"]) == (before["color"], before["bgcolor"], before["mode"])
    for name, value in plan.widgets.items():
        assert after["widgets"].get(name) == value, (name, after["widgets"].get(name), value)
    assert after["widgets"]["seed"] == 9876543210 % 2**31 and after["widgets"]["aspect_ratio"] == "9:16"
    # IMAGE sockets in order, the STRING output to info, thought_image's link gone.
    assert linked(after) == {"images": [1, 0], "images_2": [2, 0], "images_3": [3, 0]}, linked(after)
    outputs = {slot["name"]: slot["to"] for slot in after["outputs"]}
    assert outputs == {"images": [[5, 0]], "info": [[6, 0]]}, outputs
    assert linked(node(seen["switched"], 7)) == {}, "the thinking preview lost its link (the report says so)"
    (group,) = seen["switched"]["groups"]
    assert group["title"] == "Nano Banana 2" and COMFY_ID in group["nodes"], group
    for other in seen["opened"]["nodes"]:  # nothing else moved or changed
        if other["id"] not in (COMFY_ID, 7):
            mine = node(seen["switched"], other["id"])
            assert (mine["type"], mine["pos"], mine["title"], linked(mine)) == (
                other["type"], other["pos"], other["title"], linked(other))


def test_the_report_lists_what_did_not_carry_over_and_both_prices(session: dict[str, Any]):
    seen, plan = session["seen"]["switch"], comfy_plan()
    describe = pack_import("switching.plan").describe
    keys = [item["key"] for item in plan.report]
    assert keys == ["seedRange", "aspectNearest", "thinkingNotOffered", "systemPromptDropped",
                    "thoughtImageDropped"], keys
    assert session["price"]["known"], session["price"]
    runcomfy = usd(session["price"]["estimate_usd"])
    comfy = plan.comfy_price
    for text in (seen["report"], seen["report_every"]):
        lines = text.splitlines()
        assert "Picture-book edit (Nano Banana 2.1) → Nano Banana 2 Edit (RunComfy)" in lines, text
        for item in plan.report:
            assert describe(item) in lines, (describe(item), text)
        assert f"Per image: RunComfy {runcomfy} · Comfy {comfy['credits']} credits ($0.084)" in lines, text
        assert "Undo (Ctrl+Z) brings Comfy's node back." in lines


def test_one_ctrl_z_brings_comfys_node_back(session: dict[str, Any]):
    seen = session["seen"]["switch"]
    for before in seen["opened"]["nodes"]:
        after = node(seen["undone"], before["id"])
        assert (after["type"], after["pos"], after["title"], after["color"], after["bgcolor"]) == (
            before["type"], before["pos"], before["title"], before["color"], before["bgcolor"])
        assert linked(after) == linked(before), (before["id"], linked(after), linked(before))
    assert seen["undone"]["unknown"] == ["GeminiNanoBanana2V2"]
    # The whole-workflow command after the undo switches it again, the same way.
    assert node(seen["switched_every"], COMFY_ID)["type"] == EDIT
    assert linked(node(seen["switched_every"], COMFY_ID)) == linked(node(seen["switched"], COMFY_ID))


def test_the_switched_workflow_runs_with_its_references_in_order(session: dict[str, Any]):
    run, plan = session["seen"]["switch"]["run"], comfy_plan()
    assert run["sign_in_gate"] == 0 and run["saved"], run
    job = session["jobs"][0]
    assert job.model_id == "google/nano-banana-2/edit"
    assert received(job) == EXAMPLE_REFERENCES
    assert job.inputs["prompt"] == plan.widgets["prompt"] and job.inputs["seed"] == plan.widgets["seed"]
    assert job.inputs["aspect_ratio"] == "9:16"
    assert any(job.request_id in text for text in run["info"]), run["info"]


def test_six_references_grow_one_socket_at_a_time(session: dict[str, Any]):
    steps = session["seen"]["six"]["sockets"]
    names = [[socket["name"] for socket in step] for step in steps]
    expected_counts = [4, 4, 4, 4, 5, 6, 7]  # four always; one free socket past the last linked one
    assert [len(step) for step in names] == expected_counts, names
    for step in names:
        assert step == ["images"] + [f"images_{n}" for n in range(2, len(step) + 1)], step
    for linked_count, step in enumerate(steps):
        assert [socket["linked"] for socket in step] == [n < linked_count for n in range(len(step))], step


def test_six_references_are_sent_in_socket_order(session: dict[str, Any]):
    six = session["seen"]["six"]
    assert six["run"]["saved"] and six["run"]["sign_in_gate"] == 0
    job = session["jobs"][1]
    assert received(job) == [size for _, size in REFERENCES]


def test_six_references_survive_save_reload_and_api_export(session: dict[str, Any]):
    six = session["seen"]["six"]
    edit = six["edit_id"]
    built, reloaded = node(six["built"], edit), node(six["reloaded"], edit)
    sockets = [slot["name"] for slot in built["inputs"] if not slot["widget"]]
    assert [slot["name"] for slot in reloaded["inputs"] if not slot["widget"]] == sockets
    assert linked(reloaded) == linked(built)
    saved = next(entry for entry in six["saved_workflow"]["nodes"] if int(entry["id"]) == int(edit))
    assert [f"images_{n}" for n in range(2, 8)] == [slot["name"] for slot in saved["inputs"]
                                                    if slot["name"].startswith("images_")]
    inputs = six["api"][str(edit)]["inputs"]
    references = {name: value for name, value in inputs.items() if name.startswith("images")}
    assert references == {("images" if n == 1 else f"images_{n}"): [str(n), 0] for n in range(1, 7)}, references


def test_an_old_edit_workflow_opens_unchanged_and_runs(session: dict[str, Any]):
    old = session["seen"]["old"]
    saved = json.loads(OLD_WORKFLOW.read_text(encoding="utf-8"))
    shipped = next(entry for entry in saved["nodes"] if entry["type"] == EDIT)
    opened = next(entry for entry in old["opened"]["nodes"] if entry["type"] == EDIT)
    assert [slot["name"] for slot in opened["inputs"]] == [slot["name"] for slot in shipped["inputs"]]
    assert [slot.get("link") for slot in opened["inputs"]] == [slot.get("link") for slot in shipped["inputs"]]
    assert opened["widgets_values"] == shipped["widgets_values"]
    assert old["run"]["saved"]
    job = session["jobs"][2]
    assert received(job) == [(768, 768), (320, 320)]


def test_one_submit_per_run_and_no_page_error_of_the_pack(session: dict[str, Any]):
    assert len(session["jobs"]) == 3 and len(session["submits"]) == 3
    # Each error comes with its stack, so one thrown in the pack's code names the pack's files.
    # (1.27.10 throws one of its own at start, in a setting's onChange: not the pack's.)
    ours = [error for error in session["seen"]["page_errors"] if "runcomfy" in error.lower()]
    assert not ours, "\n".join(ours)
