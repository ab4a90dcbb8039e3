"""Switching from Comfy's Nano Banana 2 nodes: the value table, the seed and aspect rules, the route,
the example workflow, and the edit node's growing reference sockets (old workflows unchanged)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from packloader import load_pack, pack_import

PACK = Path(__file__).resolve().parents[1]
EXAMPLE = PACK / "docs" / "examples" / "comfy_nano_banana_2_edit.json"
plan_module = pack_import("switching.plan")
values = pack_import("switching.values")
comfy_nodes = pack_import("switching.comfy_nodes")
build_plan, PlanError, describe = plan_module.build_plan, plan_module.PlanError, plan_module.describe
SAME = comfy_nodes.SAME_MODEL
SYSTEM = comfy_nodes.V2.defaults["system_prompt"]


def v2_values(**changes):
    """A V2 node's saved widgets_values (the 2026 editor's order), with ``changes`` by name."""
    named = {"prompt": "a red fox", "model": SAME, "model.aspect_ratio": "16:9", "model.resolution": "2K",
             "model.thinking_level": "MINIMAL", "seed": 7, "control_after_generate": "fixed",
             "response_modalities": "IMAGE", "system_prompt": "", "temperature": 1.0, "top_p": 0.95}
    named.update({key.replace("__", "."): value for key, value in changes.items()})
    return [named[name] for name in comfy_nodes.V2.widget_order]


def texts(plan) -> list[str]:
    return [item["text"] for item in plan.to_json()["report"]]


# -- the rules -------------------------------------------------------------------------------

@pytest.mark.parametrize("seed, expected", [
    (0, 0), (42, 42), (2**31 - 1, 2**31 - 1), (2**31, 0), (2**31 + 5, 5),
    (9876543210, 1286608618), (2**64 - 1, 2**31 - 1),
])
def test_seed_is_kept_in_range_and_reduced_modulo_2_31_above_it(seed, expected):
    assert values.seed_in_range(seed) == expected


def test_a_negative_seed_is_refused():
    with pytest.raises(ValueError, match="negative"):
        values.seed_in_range(-1)


OFFERED = ["21:9", "16:9", "3:2", "4:3", "5:4", "1:1", "4:5", "3:4", "2:3", "9:16"]


@pytest.mark.parametrize("asked, nearest", [
    ("1:8", "9:16"), ("1:4", "9:16"), ("8:1", "21:9"), ("4:1", "21:9"),
    ("16:9", "16:9"), ("1:1", "1:1"), ("7:5", "4:3"), ("2:1", "16:9"), ("1:2", "9:16"),
])
def test_the_nearest_aspect_ratio_is_nearest_on_a_log_scale(asked, nearest):
    assert values.nearest_aspect_ratio(asked, OFFERED) == nearest


@pytest.mark.parametrize("asked", ["auto", "wide", "0:1", "3:0", ""])
def test_no_ratio_has_no_nearest(asked):
    assert values.nearest_aspect_ratio(asked, OFFERED) is None


# -- the plan --------------------------------------------------------------------------------

def test_a_v2_node_with_references_becomes_the_edit_node_with_every_value_and_link():
    linked = ["model.images.image_1", "model.images.image_2", "model.images.image_3"]
    plan = build_plan("GeminiNanoBanana2V2", v2_values(), linked, [1, 2, 0])
    assert plan.target_type == "RunComfyNanoBanana2Edit"
    assert plan.widgets == {"prompt": "a red fox", "num_images": 1, "seed": 7, "control_after_generate": "fixed",
                            "aspect_ratio": "16:9", "resolution": "2K", "output_format": "png",
                            "safety_tolerance": 4, "limit_generations": True, "enable_web_search": False,
                            "image_urls": ""}
    assert plan.inputs == [{"from": "model.images.image_1", "to": "images"},
                           {"from": "model.images.image_2", "to": "images_2"},
                           {"from": "model.images.image_3", "to": "images_3"}]
    assert plan.outputs == [{"from": 0, "to": 0}, {"from": 1, "to": 1}]
    assert plan.report == []  # the same model at its defaults: nothing lost
    assert plan.comfy_price == {"usd": 0.1217, "credits": 26, "resolution": "2K"}


def test_without_a_reference_it_becomes_the_text_to_image_node():
    plan = build_plan("GeminiNanoBanana2V2", v2_values(), ["prompt"], [1, 0, 0])
    assert plan.target_type == "RunComfyNanoBanana2TextToImage"
    assert "image_urls" not in plan.widgets
    assert plan.inputs == [{"from": "prompt", "to": "prompt"}]


def test_references_keep_their_order_and_close_gaps():
    linked = ["model.images.image_3", "model.images.image_1", "model.images.image_14"]
    plan = build_plan("GeminiNanoBanana2V2", v2_values(), linked)
    assert [(i["from"], i["to"]) for i in plan.inputs] == [
        ("model.images.image_1", "images"), ("model.images.image_3", "images_2"),
        ("model.images.image_14", "images_3")]


def test_everything_that_does_not_carry_over_is_reported_in_the_issues_words():
    saved = v2_values(model="Gemini Nano Banana 2.1", model__aspect_ratio="1:8", model__thinking_level="HIGH",
                      seed=9876543210, response_modalities="IMAGE+TEXT", system_prompt=SYSTEM,
                      temperature=0.4, top_p=0.95)
    plan = build_plan("GeminiNanoBanana2V2", saved, ["model.images.image_1", "model.files", "prompt"], [1, 1, 2])
    assert plan.widgets["seed"] == 1286608618 and plan.widgets["aspect_ratio"] == "9:16"
    assert texts(plan) == [
        "seed 9876543210 → 0…2147483647 range: 1286608618",
        "aspect_ratio 1:8 → nearest 9:16",
        f"model Gemini Nano Banana 2.1 → RunComfy's {SAME}",
        "thinking_level HIGH: not offered by RunComfy's model",
        "response_modalities IMAGE+TEXT: RunComfy's model returns images only; the STRING output becomes the node's info",
        "system_prompt dropped",
        "temperature 0.4 dropped: RunComfy's model uses its own",
        "files input dropped: RunComfy's model takes images only",
        "thought_image output: 2 link(s) dropped",
    ]
    assert {"from": "prompt", "to": "prompt"} in plan.inputs
    # Comfy's 2.1 price: 2K image plus HIGH thinking.
    assert plan.comfy_price == {"usd": round(0.072072 + 0.01769625, 6), "credits": 19, "resolution": "2K"}


def test_a_v2_workflow_that_does_not_say_its_thinking_level_gets_the_models_default():
    short = v2_values(model="Gemini Nano Banana 2.1")[:2]  # an old save: only prompt and model
    plan = build_plan("GeminiNanoBanana2V2", short)
    assert "thinking_level MEDIUM: not offered by RunComfy's model" in texts(plan)
    assert plan.widgets["seed"] == 42 and plan.widgets["control_after_generate"] == "randomize"
    assert "system_prompt dropped" in texts(plan)  # Comfy's default system prompt is never empty


def test_the_legacy_node_maps_its_one_batch_to_images_and_its_values_by_position():
    saved = ["a cat", SAME, 123, "increment", "4:5", "4K", "IMAGE", "HIGH", ""]
    plan = build_plan("GeminiNanoBanana2", saved, ["images"], [2, 0, 1])
    assert plan.target_type == "RunComfyNanoBanana2Edit"
    assert plan.inputs == [{"from": "images", "to": "images"}]
    assert {k: plan.widgets[k] for k in ("prompt", "seed", "control_after_generate", "aspect_ratio", "resolution")} == {
        "prompt": "a cat", "seed": 123, "control_after_generate": "increment", "aspect_ratio": "4:5", "resolution": "4K"}
    assert texts(plan) == ["thinking_level HIGH: not offered by RunComfy's model", "thought_image output: 1 link(s) dropped"]
    assert plan.comfy_price == {"usd": 0.1848, "credits": 39, "resolution": "4K"}


def test_named_values_work_as_well_as_positional_ones():
    by_name = dict(zip(comfy_nodes.V2.widget_order, v2_values(seed=2**40)))
    plan = build_plan("GeminiNanoBanana2V2", by_name)
    assert plan.widgets["seed"] == 2**40 % 2**31 and plan.widgets["aspect_ratio"] == "16:9"


def test_unknown_values_and_links_are_reported_not_dropped_silently():
    plan = build_plan("GeminiNanoBanana2V2", v2_values(model__aspect_ratio="golden", model__resolution="8K"),
                      ["system_prompt"])
    assert texts(plan) == ["aspect_ratio golden: not offered by RunComfy, set to auto",
                           "resolution 8K: not offered by RunComfy, set to 1K",
                           "system_prompt link dropped: RunComfy's node has no such input"]
    assert plan.comfy_price is None  # Comfy's badge has no 8K price


@pytest.mark.parametrize("node_type, saved, message", [
    ("KSampler", [], "not one of Comfy's Nano Banana 2 nodes"),
    ("GeminiNanoBanana2V2", "prompt", "saved list"),
    ("GeminiNanoBanana2V2", ["p", SAME, "auto", "1K", "MINIMAL", "lots"], "not a whole number"),
    ("GeminiNanoBanana2V2", ["p", SAME, "auto", "1K", "MINIMAL", -3], "negative"),
])
def test_a_node_that_cannot_be_planned_says_why_in_one_line(node_type, saved, message):
    with pytest.raises(PlanError, match=message):
        build_plan(node_type, saved)


def test_every_report_key_has_its_english_text():
    english = json.loads((PACK / "locales" / "en" / "main.json").read_text(encoding="utf-8"))
    assert set(plan_module.REPORT_KEYS) == set(english["runcomfyNanoBanana2"]["switching"]["report"])
    assert describe({"key": "aspectNearest", "params": {"value": "4:1", "nearest": "21:9"}}) == (
        "aspect_ratio 4:1 → nearest 21:9")


# -- the route -------------------------------------------------------------------------------

@pytest.mark.anyio
async def test_the_route_answers_the_same_plan_and_refuses_bad_bodies(tmp_path):
    pytest.importorskip("aiohttp.web")
    from test_routes import PREFIX, error_of, serve

    env = {"RUNCOMFY_API_BASE_URL": "https://model-api.runcomfy.net", "RUNCOMFY_CONFIG": str(tmp_path / "c.json")}
    body = {"node_type": "GeminiNanoBanana2V2", "widgets_values": v2_values(seed=9876543210, system_prompt=SYSTEM),
            "linked_inputs": ["model.images.image_1"], "output_links": [1, 0, 0]}
    async with serve(env) as editor:
        types = (await editor.get(f"{PREFIX}/switching")).json()["node_types"]
        assert types == {"GeminiNanoBanana2V2": "Nano Banana 2.1", "GeminiNanoBanana2": "Nano Banana 2"}
        answer = await editor.send("POST", f"{PREFIX}/switching/plan", body)
        assert answer.status_code == 200
        expected = build_plan(body["node_type"], body["widgets_values"], body["linked_inputs"], body["output_links"])
        assert answer.json() == {**expected.to_json(), "source_title": "Nano Banana 2.1"}
        long_prompt = {**body, "widgets_values": v2_values(prompt="x" * 100_000)}
        assert (await editor.send("POST", f"{PREFIX}/switching/plan", long_prompt)).status_code == 200
        for bad in ({**body, "node_type": "KSampler"}, {**body, "linked_inputs": [3]}, {"widgets_values": []},
                    {**body, "output_links": [True]}):
            refused = await editor.send("POST", f"{PREFIX}/switching/plan", bad)
            assert refused.status_code == 400 and error_of(refused)
        cross = await editor.send("POST", f"{PREFIX}/switching/plan", body, origin="https://evil.example")
        assert cross.status_code == 403


# -- the example workflow --------------------------------------------------------------------

def test_the_example_is_comfys_v2_node_as_the_current_editor_saves_it():
    workflow = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    nodes = {node["id"]: node for node in workflow["nodes"]}
    [banana] = [node for node in nodes.values() if node["type"] == "GeminiNanoBanana2V2"]
    assert len(banana["widgets_values"]) == len(comfy_nodes.V2.widget_order)
    named = dict(zip(comfy_nodes.V2.widget_order, banana["widgets_values"]))
    assert named["model"] == SAME and named["system_prompt"] == SYSTEM
    for link, origin, origin_slot, target, target_slot, _ in workflow["links"]:  # recorded at both ends
        assert link in nodes[origin]["outputs"][origin_slot]["links"], link
        assert nodes[target]["inputs"][target_slot]["link"] == link, link
    linked = [socket["name"] for socket in banana["inputs"] if socket.get("link") is not None]
    assert linked == ["model.images.image_1", "model.images.image_2", "model.images.image_3"]
    output_links = [len(output.get("links") or []) for output in banana["outputs"]]
    assert [output["name"] for output in banana["outputs"]] == ["IMAGE", "STRING", "thought_image"]
    plan = build_plan(banana["type"], banana["widgets_values"], linked, output_links)
    assert plan.target_type == "RunComfyNanoBanana2Edit"
    assert texts(plan) == ["seed 9876543210 → 0…2147483647 range: 1286608618", "aspect_ratio 1:4 → nearest 9:16",
                           "thinking_level HIGH: not offered by RunComfy's model", "system_prompt dropped",
                           "thought_image output: 1 link(s) dropped"]


# -- the edit node's sockets -----------------------------------------------------------------

@pytest.fixture(scope="module")
def edit_node():
    return load_pack().NODE_CLASS_MAPPINGS["RunComfyNanoBanana2Edit"]


def test_the_edit_node_declares_twenty_reference_sockets_the_old_four_first(edit_node):
    optional = edit_node.INPUT_TYPES()["optional"]
    sockets = [name for name, spec in optional.items() if spec[0] == "IMAGE"]
    assert sockets == ["images", "images_2", "images_3", "images_4"] + [f"images_{n}" for n in range(5, 21)]
    assert list(optional)[-1] == "image_urls"
    assert tuple(sockets) == plan_module.REFERENCE_SOCKETS


@pytest.mark.anyio
async def test_references_are_sent_in_socket_order_then_frame_order():
    edit = pack_import("nodes.edit")
    sockets = {"images_7": torch.full((1, 6, 5, 3), 0.7), "images": torch.full((2, 4, 4, 3), 0.1),
               "images_20": torch.full((1, 3, 9, 3), 0.2), "images_2": torch.full((1, 8, 2, 3), 0.5)}
    references, _ = await edit.encode_references(sockets, ["https://a.example/x.png"])
    from PIL import Image
    import io
    import base64
    sizes = []
    for reference in references[:-1]:
        data = reference.data if hasattr(reference, "data") else base64.b64decode(reference.split(",", 1)[1])
        sizes.append(Image.open(io.BytesIO(data)).size)
    assert sizes == [(4, 4), (4, 4), (2, 8), (5, 6), (9, 3)]
    assert references[-1] == "https://a.example/x.png"


def test_an_old_edit_workflow_keeps_its_sockets_and_links(edit_node):
    """The shipped edit examples were saved with images … images_4: the same names, still declared."""
    declared = set(edit_node.INPUT_TYPES()["optional"])
    for path in sorted((PACK / "example_workflows").glob("*.json")):
        workflow = json.loads(path.read_text(encoding="utf-8"))
        for node in workflow["nodes"]:
            if node["type"] != "RunComfyNanoBanana2Edit":
                continue
            names = [socket["name"] for socket in node["inputs"] if socket.get("widget") is None]
            assert names[:4] == ["images", "images_2", "images_3", "images_4"], path.name
            assert set(names) <= declared, path.name
