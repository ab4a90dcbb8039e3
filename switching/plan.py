"""The plan for replacing one of Comfy's Nano Banana 2 nodes with the pack's node.

The editor sends what it sees of the node (type, saved widget values, which
inputs are linked, how many links leave each output); the plan says which of
the pack's nodes takes its place, every widget value of that node, where each
link goes, Comfy's price of one image, and one report item per thing that did
not carry over as it was. Report items are a key and its values; the words
are in ``locales/<lang>/main.json`` under ``runcomfyNanoBanana2.switching.report``
so the editor shows them in its language (``describe`` gives the English).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..client.model.schemas import EDIT, TEXT_TO_IMAGE, get_schema
from .comfy_nodes import (
    COMFY_NODES,
    CREDITS_PER_USD,
    OUTPUT_SLOTS,
    SAME_MODEL,
    SILENT_DEFAULTS,
    THOUGHT_IMAGE_SLOT,
    ComfyNode,
)
from .values import SEED_MODULUS, nearest_aspect_ratio, seed_in_range

TEXT_TO_IMAGE_NODE = "RunComfyNanoBanana2TextToImage"
EDIT_NODE = "RunComfyNanoBanana2Edit"
TARGET_MODELS = {TEXT_TO_IMAGE_NODE: TEXT_TO_IMAGE, EDIT_NODE: EDIT}
# The edit node's reference sockets, in order (nodes/edit.py declares the same names).
REFERENCE_SOCKETS = ("images",) + tuple(f"images_{n}" for n in range(2, 21))
# Linked widget inputs that mean the same on both nodes.
LINKED_WIDGETS = {"prompt": "prompt", "seed": "seed"}
# Every kind of report line; the words are the locales' runcomfyNanoBanana2.switching.report.<key>.
REPORT_KEYS = ("modelReplaced", "thinkingNotOffered", "textNotReturned", "systemPromptDropped", "samplingDropped",
               "seedRange", "aspectNearest", "valueNotOffered", "filesDropped", "linkDropped", "thoughtImageDropped")
_LOCALE = Path(__file__).resolve().parent.parent / "locales" / "en" / "main.json"


def comfy_node_types() -> list[str]:
    """The node types a plan can be built for."""
    return list(COMFY_NODES)


@dataclass
class SwitchPlan:
    """What the editor does to switch one node (``to_json`` is the route's answer)."""

    source_type: str
    target_type: str
    widgets: dict[str, Any]
    inputs: list[dict[str, str]]  # {"from": Comfy's input name, "to": the pack's input name}
    outputs: list[dict[str, int]]  # {"from": Comfy's output slot, "to": the pack's output slot}
    report: list[dict[str, Any]] = field(default_factory=list)  # {"key", "params"}
    comfy_price: dict[str, Any] | None = None  # {"usd", "credits", "resolution"} of one image

    def to_json(self) -> dict[str, Any]:
        return {"source_type": self.source_type, "target_type": self.target_type, "widgets": self.widgets,
                "inputs": self.inputs, "outputs": self.outputs,
                "report": [{**item, "text": describe(item)} for item in self.report],
                "comfy_price": self.comfy_price}


class PlanError(ValueError):
    """The node cannot be planned as sent (one line saying what is wrong)."""


def build_plan(node_type: str, widgets_values: Sequence[Any] | Mapping[str, Any],
               linked_inputs: Sequence[str] = (), output_links: Sequence[int] = ()) -> SwitchPlan:
    """The plan for one node of ``node_type`` with these saved values and links."""
    comfy = COMFY_NODES.get(node_type)
    if comfy is None:
        raise PlanError(f"{node_type!r} is not one of Comfy's Nano Banana 2 nodes ({', '.join(COMFY_NODES)})")
    values = _named_values(comfy, widgets_values)
    linked = list(dict.fromkeys(linked_inputs))
    references = [name for name in comfy.reference_inputs if name in linked]
    target = EDIT_NODE if references else TEXT_TO_IMAGE_NODE
    report: list[dict[str, Any]] = []
    widgets = _widgets(comfy, values, target, report)
    inputs = [{"from": name, "to": socket} for name, socket in zip(references, REFERENCE_SOCKETS)]
    for name in linked:
        if name in references:
            continue
        if LINKED_WIDGETS.get(comfy.value_name(name)):
            inputs.append({"from": name, "to": LINKED_WIDGETS[comfy.value_name(name)]})
        elif name == comfy.files_input:
            report.append(_item("filesDropped"))
        else:
            report.append(_item("linkDropped", name=name))
    outputs = [{"from": source, "to": slot} for source, slot in OUTPUT_SLOTS.items()]
    thought_links = int(output_links[THOUGHT_IMAGE_SLOT]) if len(output_links) > THOUGHT_IMAGE_SLOT else 0
    if thought_links:
        report.append(_item("thoughtImageDropped", count=thought_links))
    return SwitchPlan(node_type, target, widgets, inputs, outputs, report, _comfy_price(comfy, values))


def _named_values(comfy: ComfyNode, widgets_values: Sequence[Any] | Mapping[str, Any]) -> dict[str, Any]:
    """Saved values by Comfy's widget names, Comfy's defaults where the workflow holds none."""
    if isinstance(widgets_values, Mapping):
        saved = dict(widgets_values)
    elif isinstance(widgets_values, Sequence) and not isinstance(widgets_values, str):
        saved = dict(zip(comfy.widget_order, widgets_values))
    else:
        raise PlanError("widgets_values must be the node's saved list of widget values")
    values = {**comfy.defaults, **{name: value for name, value in saved.items() if value is not None}}
    thinking = "model.thinking_level" if "model.thinking_level" in comfy.widget_order else "thinking_level"
    values.setdefault(thinking, comfy.thinking_defaults.get(str(values.get("model")), "MINIMAL"))
    return {comfy.value_name(name): value for name, value in values.items()}


def _widgets(comfy: ComfyNode, values: dict[str, Any], target: str, report: list[dict[str, Any]]) -> dict[str, Any]:
    """Every widget value of the pack's node: Comfy's where it has an equivalent, else the schema's default."""
    properties = get_schema(TARGET_MODELS[target]).properties
    widgets = {name: spec["default"] for name, spec in properties.items() if name != "image_urls"}
    if target == EDIT_NODE:
        widgets["image_urls"] = ""
    widgets["prompt"] = str(values.get("prompt") or "")
    widgets["seed"] = _seed(values.get("seed"), report)
    widgets["control_after_generate"] = str(values.get("control_after_generate") or "randomize")
    widgets["aspect_ratio"] = _aspect_ratio(str(values.get("aspect_ratio")), list(properties["aspect_ratio"]["enum"]),
                                            report)
    resolution = str(values.get("resolution"))
    if resolution in properties["resolution"]["enum"]:
        widgets["resolution"] = resolution
    else:
        report.append(_item("valueNotOffered", name="resolution", value=resolution, used=widgets["resolution"]))
    model = str(values.get("model"))
    if model != SAME_MODEL:
        report.append(_item("modelReplaced", value=model, model=SAME_MODEL))
    thinking = str(values.get("thinking_level"))
    if thinking != SILENT_DEFAULTS["thinking_level"]:
        report.append(_item("thinkingNotOffered", value=thinking))
    if str(values.get("response_modalities")) != SILENT_DEFAULTS["response_modalities"]:
        report.append(_item("textNotReturned", value=str(values.get("response_modalities"))))
    if str(values.get("system_prompt") or "").strip():
        report.append(_item("systemPromptDropped"))
    for name in ("temperature", "top_p"):
        if name in values and not _same_number(values[name], SILENT_DEFAULTS[name]):
            report.append(_item("samplingDropped", name=name, value=values[name]))
    return widgets


def _seed(value: Any, report: list[dict[str, Any]]) -> int:
    try:
        seed = int(value)
    except (TypeError, ValueError):
        raise PlanError(f"seed {value!r} is not a whole number") from None
    if seed < 0:
        raise PlanError(f"seed {seed} is negative; Comfy's seeds start at 0")
    mapped = seed_in_range(seed)
    if mapped != seed:
        report.append(_item("seedRange", value=seed, max=SEED_MODULUS - 1, mapped=mapped))
    return mapped


def _aspect_ratio(value: str, offered: list[str], report: list[dict[str, Any]]) -> str:
    if value in offered:
        return value
    nearest = nearest_aspect_ratio(value, [name for name in offered if name != "auto"])
    if nearest is None:
        report.append(_item("valueNotOffered", name="aspect_ratio", value=value, used="auto"))
        return "auto"
    report.append(_item("aspectNearest", value=value, nearest=nearest))
    return nearest


def _same_number(value: Any, default: float) -> bool:
    try:
        return abs(float(value) - default) < 1e-9
    except (TypeError, ValueError):
        return False


def _comfy_price(comfy: ComfyNode, values: dict[str, Any]) -> dict[str, Any] | None:
    resolution = str(values.get("resolution"))
    usd = comfy.price_usd(str(values.get("model")), resolution, str(values.get("thinking_level")))
    if usd is None:
        return None
    return {"usd": usd, "credits": round(usd * CREDITS_PER_USD), "resolution": resolution}


def _item(key: str, **params: Any) -> dict[str, Any]:
    assert key in REPORT_KEYS, key
    return {"key": key, "params": params}


_english: dict[str, str] | None = None


def describe(item: Mapping[str, Any]) -> str:
    """A report item in English, from the same texts the editor shows (``locales/en``)."""
    global _english
    if _english is None:
        texts = json.loads(_LOCALE.read_text(encoding="utf-8"))
        _english = texts["runcomfyNanoBanana2"]["switching"]["report"]
    template = _english[item["key"]]
    params = item.get("params", {})
    for name, value in params.items():
        template = template.replace("{" + name + "}", str(value))
    return template
