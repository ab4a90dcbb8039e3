"""ComfyUI widget definitions derived from the model schemas.

Deriving them (instead of writing them out twice) keeps every enum, default
and bound identical to the API contract in ``client/model/schemas``.
"""

from __future__ import annotations

from typing import Any

from ..client.limits import SEED_MAX, SEED_MIN
from ..client.model.schemas import ModelSchema

# Inputs that are not plain widgets: images arrive as tensors and URLs.
NOT_WIDGETS = ("image_urls",)


def widget_for(name: str, spec: dict[str, Any]) -> tuple:
    """One ``INPUT_TYPES`` entry for a schema property."""
    tooltip = spec.get("description", "")
    kind = spec.get("type")
    if kind == "string" and "enum" in spec:
        return (list(spec["enum"]), {"default": spec["default"], "tooltip": tooltip})
    if kind == "string":
        return ("STRING", {"default": spec.get("default", ""), "multiline": name == "prompt", "tooltip": tooltip})
    if kind == "boolean":
        return ("BOOLEAN", {"default": spec["default"], "tooltip": tooltip})
    if kind == "integer" and name == "seed":
        return (
            "INT",
            {
                "default": spec["default"],
                "min": SEED_MIN,
                "max": SEED_MAX,
                "control_after_generate": True,
                "tooltip": tooltip + " Sent to the API: the same seed and inputs give the same image.",
            },
        )
    if kind == "integer":
        values = spec.get("enum")
        low = min(values) if values else spec["minimum"]
        high = max(values) if values else spec["maximum"]
        return ("INT", {"default": spec["default"], "min": low, "max": high, "step": 1, "tooltip": tooltip})
    raise ValueError(f"No widget for schema property {name!r} of type {kind!r}")


def schema_widgets(schema: ModelSchema) -> dict[str, tuple]:
    """Every schema property except image inputs, in schema order."""
    return {name: widget_for(name, dict(spec)) for name, spec in schema.properties.items() if name not in NOT_WIDGETS}
