"""What Comfy's own Nano Banana 2 nodes look like in a workflow the editor saved.

Facts read from Comfy's public source, ``comfy_api_nodes/nodes_gemini.py``
(Comfy-Org/ComfyUI, 2026), and from how the editor saves a V3 node
(``src/core/graph/widgets/dynamicWidgets.ts`` of Comfy-Org/ComfyUI_frontend
1.58: a dynamic combo's own widgets follow it, named ``model.<input>``; its
Autogrow sockets are inputs named ``model.images.image_<n>``, never widgets).
A missing node (the backend does not know the type) keeps only these saved
values and socket names, so the order below is what the plan reads them by.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

# Comfy's credit rate (CREDITS_PER_USD in the editor's shared creditsUtil.ts).
CREDITS_PER_USD = 211

# The one model of Comfy's list that RunComfy's google/nano-banana-2 runs.
SAME_MODEL = "Nano Banana 2 (Gemini 3.1 Flash Image)"

# Comfy's default system prompt (GEMINI_IMAGE_SYS_PROMPT), as a workflow holds it until edited.
_SYSTEM_PROMPT = (
    "You are an expert image-generation engine. You must ALWAYS produce an image.\n"
    "Interpret all user input—regardless of format, intent, or abstraction—as literal visual directives "
    "for image composition.\n"
    "If a prompt is conversational or lacks specific visual details, you must creatively invent a concrete "
    "visual scenario that depicts the concept.\n"
    "Prioritize generating the visual representation above any text, formatting, or conversational requests."
)

# Comfy's per-image price badges, in US dollars (approximate, as the badge says).
_NB2_PRICES = {"1K": 0.0835, "2K": 0.1217, "4K": 0.1848}
_NB21_IMAGE_PRICES = {"1K": 0.048048, "2K": 0.072072, "4K": 0.162162}
_NB21_THINKING_PRICES = {"MINIMAL": 0.0, "MEDIUM": 0.010725, "HIGH": 0.01769625}
_LITE_PRICE = 0.0408


@dataclass(frozen=True)
class ComfyNode:
    """One of Comfy's node types, as a saved workflow shows it."""

    node_type: str
    display_name: str
    # Saved ``widgets_values`` in order (``control_after_generate`` is the seed's companion widget).
    widget_order: tuple[str, ...]
    defaults: Mapping[str, Any]
    # Sockets that carry reference images, in the order Comfy sends them.
    reference_inputs: tuple[str, ...]
    files_input: str
    # Thinking level a model runs at when the workflow does not say (per ``model`` choice).
    thinking_defaults: Mapping[str, str] = field(default_factory=dict)

    def value_name(self, name: str) -> str:
        """``model.aspect_ratio`` -> ``aspect_ratio``: the same value under either node's naming."""
        return name.removeprefix("model.")

    def price_usd(self, model: str, resolution: str, thinking_level: str) -> float | None:
        """Comfy's badge price of one image, or None where its badge has none."""
        if "lite" in model.lower():
            return _LITE_PRICE
        if "banana 2.1" in model.lower():
            image = _NB21_IMAGE_PRICES.get(resolution)
            thinking = _NB21_THINKING_PRICES.get(thinking_level)
            return None if image is None or thinking is None else round(image + thinking, 6)
        return _NB2_PRICES.get(resolution)


V2 = ComfyNode(
    node_type="GeminiNanoBanana2V2",
    display_name="Nano Banana 2.1",
    widget_order=("prompt", "model", "model.aspect_ratio", "model.resolution", "model.thinking_level", "seed",
                  "control_after_generate", "response_modalities", "system_prompt", "temperature", "top_p"),
    defaults={"prompt": "", "model": "Gemini Nano Banana 2.1", "model.aspect_ratio": "auto",
              "model.resolution": "1K", "seed": 42, "control_after_generate": "randomize",
              "response_modalities": "IMAGE", "system_prompt": _SYSTEM_PROMPT, "temperature": 1.0, "top_p": 0.95},
    reference_inputs=tuple(f"model.images.image_{n}" for n in range(1, 15)),
    files_input="model.files",
    thinking_defaults={"Gemini Nano Banana 2.1": "MEDIUM", SAME_MODEL: "MINIMAL", "Nano Banana 2 Lite": "MINIMAL"},
)

LEGACY = ComfyNode(
    node_type="GeminiNanoBanana2",
    display_name="Nano Banana 2",
    widget_order=("prompt", "model", "seed", "control_after_generate", "aspect_ratio", "resolution",
                  "response_modalities", "thinking_level", "system_prompt"),
    defaults={"prompt": "", "model": SAME_MODEL, "seed": 42, "control_after_generate": "randomize",
              "aspect_ratio": "auto", "resolution": "1K", "response_modalities": "IMAGE",
              "thinking_level": "MINIMAL", "system_prompt": _SYSTEM_PROMPT},
    reference_inputs=("images",),  # one IMAGE batch of up to 14 frames
    files_input="files",
)

COMFY_NODES: dict[str, ComfyNode] = {node.node_type: node for node in (V2, LEGACY)}

# Comfy's outputs by slot: the pack's nodes give images (0) and info (1); thought_image has no equivalent.
OUTPUT_SLOTS = {0: 0, 1: 1}
THOUGHT_IMAGE_SLOT = 2

# Values that are Comfy's defaults for Gemini 3.1 Flash Image and also the model's own when a request
# says nothing (RunComfy's request has no field for them): carried over in effect, so no report line.
SILENT_DEFAULTS = {"thinking_level": "MINIMAL", "response_modalities": "IMAGE", "temperature": 1.0, "top_p": 0.95}
