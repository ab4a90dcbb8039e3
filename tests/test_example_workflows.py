"""The example workflows and help pages match the nodes as they are defined now.

No ComfyUI needed: the UI-format files (what the editor saves and Browse
Templates opens) are checked against our nodes' ``INPUT_TYPES`` and a small
table of the core nodes the examples use. A widget value that no longer
matches the node (a renamed choice, a new input, a moved widget) would make
the editor load the workflow with shifted or invalid values, so it fails here.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from packloader import PACK_ROOT, pack_import

WORKFLOW_DIR = PACK_ROOT / "example_workflows"
DOCS_DIR = PACK_ROOT / "web" / "docs"
EXPECTED_WORKFLOWS = {
    "nano_banana_2_text_to_image",
    "nano_banana_2_edit",
    "nano_banana_2_multi_reference_edit",
    "nano_banana_2_generate_then_edit",
    "nano_banana_2_result_by_request_id",
}
# What the editor stores after an INT widget with control_after_generate.
SEED_CONTROL_VALUES = ("fixed", "increment", "decrement", "randomize")
# Widget types the editor draws as widgets (everything else is a socket).
WIDGET_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN")
# ComfyUI's shape for an optional input socket.
OPTIONAL_SHAPE = 7

# The core nodes the examples may use, as ComfyUI 0.3.x / frontend 1.27 define them:
# input sockets (name, type), widgets (name, kind, bounds) in widgets_values order, outputs.
CORE_NODES: dict[str, dict[str, Any]] = {
    "LoadImage": {
        "sockets": [],
        "widgets": [("image", "image_file"), ("upload", "upload")],
        "outputs": [("IMAGE", "IMAGE"), ("MASK", "MASK")],
    },
    "SaveImage": {
        "sockets": [("images", "IMAGE")],
        "widgets": [("filename_prefix", "STRING")],
        "outputs": [],
    },
    "ImageCrop": {
        "sockets": [("image", "IMAGE")],
        "widgets": [("width", ("INT", 1, 16384)), ("height", ("INT", 1, 16384)),
                    ("x", ("INT", 0, 16384)), ("y", ("INT", 0, 16384))],
        "outputs": [("IMAGE", "IMAGE")],
    },
    "PreviewAny": {"sockets": [("source", "*")], "widgets": [], "outputs": []},
    # Frontend-only: never sent to the server.
    "Note": {"sockets": [], "widgets": [("text", "STRING")], "outputs": []},
}
# Files that ship in ComfyUI's input folder.
SHIPPED_INPUT_IMAGES = ("example.png",)


def node_classes() -> dict[str, type]:
    return pack_import("nodes").NODE_CLASS_MAPPINGS


def generates(cls: type) -> bool:
    """A node that submits paid jobs has a seed; Result by Request ID only collects one."""
    return "seed" in cls.INPUT_TYPES().get("required", {})


def workflow_paths() -> list[Path]:
    return sorted(WORKFLOW_DIR.glob("*.json"))


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def our_widgets(cls: type) -> list[tuple[str, Any, dict]]:
    """(name, type, options) of every widget, in the order the editor saves them."""
    spec = cls.INPUT_TYPES()
    widgets = []
    for section in ("required", "optional"):
        for name, entry in spec.get(section, {}).items():
            kind, options = entry[0], (entry[1] if len(entry) > 1 else {})
            if isinstance(kind, list) or kind in WIDGET_TYPES:
                widgets.append((name, kind, options))
    return widgets


def our_sockets(cls: type) -> list[tuple[str, str, bool]]:
    """(name, type, optional) of every input that is a socket, not a widget."""
    spec = cls.INPUT_TYPES()
    return [
        (name, entry[0], section == "optional")
        for section in ("required", "optional")
        for name, entry in spec.get(section, {}).items()
        if not (isinstance(entry[0], list) or entry[0] in WIDGET_TYPES)
    ]


def expected_values_layout(cls: type) -> list[tuple[str, Any, dict]]:
    """Our widgets with the extra control_after_generate entry the editor saves after a seed."""
    layout = []
    for name, kind, options in our_widgets(cls):
        layout.append((name, kind, options))
        if options.get("control_after_generate"):
            layout.append((f"{name}:control_after_generate", "control", {}))
    return layout


def value_problem(kind: Any, options: dict, value: Any) -> str | None:
    """Why ``value`` is not valid for a widget of ``kind`` (None when it is)."""
    if kind == "control":
        return None if value in SEED_CONTROL_VALUES else f"{value!r} is not one of {SEED_CONTROL_VALUES}"
    if isinstance(kind, list):
        return None if value in kind else f"{value!r} is not one of {kind}"
    if kind == "BOOLEAN":
        return None if isinstance(value, bool) else f"{value!r} is not a boolean"
    if kind == "STRING":
        return None if isinstance(value, str) else f"{value!r} is not a string"
    if kind in ("INT", "FLOAT"):
        number_types = (int,) if kind == "INT" else (int, float)
        if isinstance(value, bool) or not isinstance(value, number_types):
            return f"{value!r} is not {kind}"
        low, high = options.get("min"), options.get("max")
        if (low is not None and value < low) or (high is not None and value > high):
            return f"{value} is outside {low}..{high}"
        return None
    return f"unknown widget kind {kind!r}"


def test_the_examples_exist_each_with_a_thumbnail():
    names = {path.stem for path in workflow_paths()}
    assert names == EXPECTED_WORKFLOWS
    for path in workflow_paths():
        thumbnail = path.with_suffix(".jpg")
        assert thumbnail.is_file(), f"{path.name} has no thumbnail {thumbnail.name} (Browse Templates shows it)"
        with Image.open(thumbnail) as image:
            assert image.format == "JPEG", f"{thumbnail.name} is {image.format}, not JPEG"
            image.load()  # decodes every byte: a truncated file fails here
            assert image.width >= 256 and image.height >= 128, f"{thumbnail.name} is only {image.size}"


@pytest.mark.parametrize("path", workflow_paths(), ids=lambda p: p.stem)
def test_workflow_is_ui_format_the_editor_loads(path: Path):
    workflow = load(path)
    assert "prompt" not in workflow and not all(key.isdigit() for key in workflow), "API format, not UI format"
    assert workflow.get("version") == 0.4, "the editor's graphToPrompt throws without version 0.4"
    for key, kind in (("nodes", list), ("links", list), ("groups", list), ("config", dict), ("extra", dict)):
        assert isinstance(workflow.get(key), kind), f"'{key}' must be a {kind.__name__}"
    ids = [node["id"] for node in workflow["nodes"]]
    assert len(ids) == len(set(ids)), "node ids repeat"
    assert workflow["last_node_id"] >= max(ids)
    link_ids = [link[0] for link in workflow["links"]]
    assert len(link_ids) == len(set(link_ids)), "link ids repeat"
    assert workflow["last_link_id"] >= max(link_ids, default=0)
    for node in workflow["nodes"]:
        for key in ("type", "pos", "size", "flags", "order", "mode", "properties", "widgets_values"):
            assert key in node, f"node {node['id']} ({node.get('type')}) has no '{key}'"
        assert node["mode"] == 0, f"node {node['id']} is muted or bypassed"
        assert len(node["pos"]) == 2 and len(node["size"]) == 2
        for slot in [*node.get("inputs", []), *node.get("outputs", [])]:
            # The editor's schema check (a toast, not a console error) rejects null anywhere but links.
            nulls = {key for key, value in slot.items() if value is None} - {"link", "links"}
            assert not nulls, f"node {node['id']} slot {slot.get('name')}: {sorted(nulls)} are null"


@pytest.mark.parametrize("path", workflow_paths(), ids=lambda p: p.stem)
def test_every_node_is_ours_or_a_listed_core_node(path: Path):
    known = set(node_classes()) | set(CORE_NODES)
    unknown = {node["type"] for node in load(path)["nodes"]} - known
    assert not unknown, f"unknown node types {unknown}: use ours or add a core node to CORE_NODES"
    assert {node["type"] for node in load(path)["nodes"]} & set(node_classes()), "no node of this pack"


@pytest.mark.parametrize("path", workflow_paths(), ids=lambda p: p.stem)
def test_our_widget_values_match_input_types(path: Path):
    classes = node_classes()
    for node in load(path)["nodes"]:
        cls = classes.get(node["type"])
        if cls is None:
            continue
        where = f"{path.name} node {node['id']} ({node['type']})"
        layout = expected_values_layout(cls)
        values = node["widgets_values"]
        names = [name for name, _, _ in layout]
        assert len(values) == len(layout), f"{where}: {len(values)} widget values, expected {len(layout)}: {names}"
        for (name, kind, options), value in zip(layout, values):
            problem = value_problem(kind, options, value)
            assert problem is None, f"{where}: {name}: {problem}"
        assert node["properties"].get("Node name for S&R") == node["type"]


@pytest.mark.parametrize("path", workflow_paths(), ids=lambda p: p.stem)
def test_our_nodes_use_schema_defaults_a_real_prompt_and_a_fixed_seed(path: Path):
    """Examples change only the prompt; the seed is 'fixed' so re-queuing never re-bills."""
    for node in load(path)["nodes"]:
        cls = node_classes().get(node["type"])
        if cls is None or not generates(cls):
            continue
        where = f"{path.name} node {node['id']}"
        values = dict(zip([name for name, _, _ in expected_values_layout(cls)], node["widgets_values"]))
        assert values["seed:control_after_generate"] == "fixed", (
            f"{where}: a paid node set to '{values['seed:control_after_generate']}' gets a new seed and "
            "is billed again on every queue; examples use 'fixed'"
        )
        for name, _, options in our_widgets(cls):
            if name == "prompt":
                assert values[name].strip() and values[name] != options["default"], f"{where}: write a real prompt"
            else:
                assert values[name] == options.get("default"), f"{where}: {name} is not the schema default"


@pytest.mark.parametrize("path", workflow_paths(), ids=lambda p: p.stem)
def test_our_request_bodies_pass_the_model_schema(path: Path):
    """What the example would send is accepted by the model's published schema."""
    schemas = pack_import("client.model.schemas")
    models = {"RunComfyNanoBanana2TextToImage": schemas.TEXT_TO_IMAGE, "RunComfyNanoBanana2Edit": schemas.EDIT}
    for node in load(path)["nodes"]:
        cls = node_classes().get(node["type"])
        if cls is None or not generates(cls):
            continue
        values = dict(zip([name for name, _, _ in expected_values_layout(cls)], node["widgets_values"]))
        body = {name: values[name] for name, _, _ in our_widgets(cls) if name != "image_urls"}
        if node["type"] == "RunComfyNanoBanana2Edit":
            # stands in for the connected images, as the node sends them
            body["image_urls"] = [schemas.InlineImage(b"\x89PNG\r\n\x1a\n" + bytes(8), "image/png")]
        schemas.get_schema(models[node["type"]]).check(body)


def test_every_node_class_has_an_example():
    used = {node["type"] for path in workflow_paths() for node in load(path)["nodes"]}
    assert not set(node_classes()) - used, f"no example workflow uses {sorted(set(node_classes()) - used)}"


@pytest.mark.parametrize("path", workflow_paths(), ids=lambda p: p.stem)
def test_a_request_id_example_holds_a_placeholder_the_node_accepts(path: Path):
    """Queued as shipped, the id passes the node's check (RunComfy answers it is unknown, for free);
    it is all zeros, so nobody takes it for a job of theirs, and the Note says what to paste."""
    for node in load(path)["nodes"]:
        cls = node_classes().get(node["type"])
        if cls is None or generates(cls):
            continue
        (request_id,) = node["widgets_values"]
        assert cls.VALIDATE_INPUTS(request_id=request_id) is True, cls.VALIDATE_INPUTS(request_id=request_id)
        digits = str(uuid.UUID(request_id)).replace("-", "")  # a UUID, as RunComfy's ids are
        assert set(digits) <= {"0", "4", "8"}, f"{request_id!r}: zeros but for the version and variant digits"
        notes = " ".join(n["widgets_values"][0] for n in load(path)["nodes"] if n["type"] == "Note")
        for words in ("request id", "Stop", "gave up waiting", "history", "free"):
            assert words in notes, f"{path.name}: the Note does not say {words!r}"


@pytest.mark.parametrize("path", workflow_paths(), ids=lambda p: p.stem)
def test_core_node_widget_values(path: Path):
    for node in load(path)["nodes"]:
        core = CORE_NODES.get(node["type"])
        if core is None:
            continue
        where = f"{path.name} node {node['id']} ({node['type']})"
        values = node["widgets_values"]
        assert len(values) == len(core["widgets"]), f"{where}: {values}"
        for (name, kind), value in zip(core["widgets"], values):
            if kind == "image_file":
                assert value in SHIPPED_INPUT_IMAGES, f"{where}: {name}={value!r} is not in ComfyUI's input folder"
            elif kind == "upload":
                assert value == "image", f"{where}: {name}={value!r}"
            elif isinstance(kind, tuple):
                problem = value_problem(kind[0], {"min": kind[1], "max": kind[2]}, value)
                assert problem is None, f"{where}: {name}: {problem}"
            else:
                assert value_problem(kind, {}, value) is None, f"{where}: {name}={value!r}"


def _declared_sockets(node: dict[str, Any]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(inputs, outputs) as (name, type) that the node type defines, for ours and core nodes."""
    cls = node_classes().get(node["type"])
    if cls is not None:
        return [(name, kind) for name, kind, _ in our_sockets(cls)], list(zip(cls.RETURN_NAMES, cls.RETURN_TYPES))
    core = CORE_NODES[node["type"]]
    return core["sockets"], core["outputs"]


@pytest.mark.parametrize("path", workflow_paths(), ids=lambda p: p.stem)
def test_node_slots_match_the_node_definitions(path: Path):
    for node in load(path)["nodes"]:
        if node["type"] not in node_classes() and node["type"] not in CORE_NODES:
            continue
        where = f"{path.name} node {node['id']} ({node['type']})"
        sockets, outputs = _declared_sockets(node)
        saved_sockets = [(slot["name"], slot["type"]) for slot in node.get("inputs", []) if "widget" not in slot]
        # The edit node's reference sockets grow in the editor as they are linked: a saved workflow
        # holds the first ones; every socket it does not hold must be a further optional reference.
        grown = sockets[len(saved_sockets):]
        assert saved_sockets == sockets[:len(saved_sockets)], f"{where}: input sockets {saved_sockets}, node defines {sockets}"
        assert all(name.startswith("images_") and kind == "IMAGE" for name, kind in grown), \
            f"{where}: input sockets {saved_sockets}, node defines {sockets}"
        saved_outputs = [(slot["name"], slot["type"]) for slot in node.get("outputs", [])]
        assert saved_outputs == outputs, f"{where}: outputs {saved_outputs}, node defines {outputs}"
        cls = node_classes().get(node["type"])
        if cls is not None:
            optional = {name for name, _, is_optional in our_sockets(cls) if is_optional}
            for slot in node["inputs"]:
                if slot["name"] in optional:
                    assert slot.get("shape") == OPTIONAL_SHAPE, f"{where}: optional socket {slot['name']} lacks shape 7"


@pytest.mark.parametrize("path", workflow_paths(), ids=lambda p: p.stem)
def test_links_agree_with_both_ends(path: Path):
    workflow = load(path)
    nodes = {node["id"]: node for node in workflow["nodes"]}
    links = {}
    for link in workflow["links"]:
        assert isinstance(link, list) and len(link) == 6, f"link {link} is not [id, from, slot, to, slot, type]"
        link_id, source_id, source_slot, target_id, target_slot, kind = link
        links[link_id] = link
        assert source_id in nodes and target_id in nodes, f"link {link_id} joins missing nodes"
        source, target = nodes[source_id], nodes[target_id]
        assert 0 <= source_slot < len(source["outputs"]), f"link {link_id}: {source['type']} has no output {source_slot}"
        assert 0 <= target_slot < len(target["inputs"]), f"link {link_id}: {target['type']} has no input {target_slot}"
        output, socket = source["outputs"][source_slot], target["inputs"][target_slot]
        assert link_id in (output.get("links") or []), f"link {link_id} missing from {source['type']}.{output['name']}"
        assert socket.get("link") == link_id, f"link {link_id} missing from {target['type']}.{socket['name']}"
        assert kind in (output["type"], "*"), f"link {link_id} is {kind}, output is {output['type']}"
        assert socket["type"] in (output["type"], "*"), (
            f"link {link_id}: {output['type']} into {target['type']}.{socket['name']} ({socket['type']})"
        )
    for node in workflow["nodes"]:
        for socket in node.get("inputs", []):
            if socket.get("link") is not None:
                assert links.get(socket["link"], [None] * 4)[3] == node["id"], f"dangling link on {node['type']}"
        for output in node.get("outputs", []):
            for link_id in output.get("links") or []:
                assert links.get(link_id, [None, None])[1] == node["id"], f"dangling link on {node['type']}"


@pytest.mark.parametrize("path", workflow_paths(), ids=lambda p: p.stem)
def test_every_required_socket_and_every_edit_reference_is_connected(path: Path):
    for node in load(path)["nodes"]:
        connected = {slot["name"] for slot in node.get("inputs", []) if slot.get("link") is not None}
        where = f"{path.name} node {node['id']} ({node['type']})"
        if node["type"] == "RunComfyNanoBanana2Edit":
            assert connected & {"images", "images_2", "images_3", "images_4"}, f"{where}: no reference image"
            continue
        cls = node_classes().get(node["type"])
        sockets = (
            [(name, kind) for name, kind, optional in our_sockets(cls) if not optional]
            if cls is not None
            else CORE_NODES[node["type"]]["sockets"]
        )
        missing = {name for name, _ in sockets} - connected
        assert not missing, f"{where}: required input(s) {missing} not connected"


def test_workflows_hold_no_credentials():
    for path in workflow_paths():
        text = path.read_text(encoding="utf-8").lower()
        for marker in ("bearer ", "api_token\"", "authorization"):
            assert marker not in text, f"{path.name} contains {marker!r}"


def test_a_help_page_per_node_class():
    pages = {path.stem for path in DOCS_DIR.glob("*.md")}
    missing = set(node_classes()) - pages
    assert not missing, f"web/docs has no page for {sorted(missing)}"


@pytest.mark.parametrize("name", sorted(pack_import("nodes").NODE_CLASS_MAPPINGS))
def test_help_page_names_every_input_and_output(name: str):
    cls = node_classes()[name]
    text = (DOCS_DIR / f"{name}.md").read_text(encoding="utf-8")
    spec = cls.INPUT_TYPES()
    for section in ("required", "optional"):
        for input_name in spec.get(section, {}):
            assert f"`{input_name}`" in text, f"{name}.md does not document input `{input_name}`"
    for output_name in cls.RETURN_NAMES:
        assert f"`{output_name}`" in text, f"{name}.md does not document output `{output_name}`"
    for name_, kind, options in our_widgets(cls):
        if isinstance(kind, list):
            for choice in kind:
                assert str(choice) in text, f"{name}.md does not list choice {choice!r} of `{name_}`"
