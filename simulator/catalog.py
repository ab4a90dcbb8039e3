"""The models this simulator serves and their input schemas, read off RunComfy's
model pages (``shared/seeds``), independently of the client's own copy.

Titles and descriptions are left out: the pages show them translated into
whatever language they were fetched in, and nothing on the wire depends on
them. Every type, enum, default, bound and required field is here, in page
order; a test compares this table with the pages field by field.
"""

from __future__ import annotations

import copy
from typing import Any

TEXT_TO_IMAGE = "google/nano-banana-2/text-to-image"
EDIT = "google/nano-banana-2/edit"


def _settings() -> dict[str, dict[str, Any]]:
    """The fields both pages list after the prompt (and the edit's images)."""
    return {
        "num_images": {"type": "integer", "default": 1, "minimum": 1, "maximum": 4},
        "seed": {"type": "integer", "default": 0},
        "aspect_ratio": {"type": "string", "default": "auto", "enum": [
            "auto", "21:9", "16:9", "3:2", "4:3", "5:4", "1:1", "4:5", "3:4", "2:3", "9:16"]},
        "resolution": {"type": "string", "enum": ["0.5K", "1K", "2K", "4K"], "default": "1K"},
        "output_format": {"type": "string", "enum": ["jpeg", "png", "webp"], "default": "png"},
        "safety_tolerance": {"type": "integer", "enum": [1, 2, 3, 4, 5, 6], "default": 4},
        "limit_generations": {"type": "boolean", "default": True},
        "enable_web_search": {"type": "boolean", "default": False},
    }


_SCHEMAS: dict[str, dict[str, Any]] = {
    TEXT_TO_IMAGE: {"type": "object", "title": "Input", "required": ["prompt"], "properties": {
        "prompt": {"type": "string", "default": (
            "A cinematic close-up portrait of an American woman standing under neon lights in rainy Tokyo, "
            "shallow depth of field, reflective wet streets, ultra-detailed, realistic skin texture")},
        **_settings(),
    }},
    EDIT: {"type": "object", "title": "Input", "required": ["prompt", "image_urls"], "properties": {
        "prompt": {"type": "string", "default": (
            "Keep the subject identity unchanged, convert the background into a rainy neon cyberpunk street "
            "at night, cinematic lighting, high detail.")},
        "image_urls": {"type": "array", "items": {"type": "string", "format": "image_uri"}, "minItems": 1,
                       "maxItems": 20, "default": [
                           "https://playgrounds-storage-public.runcomfy.net/tools/7324/media-files/input-1-1.png"]},
        **_settings(),
    }},
}
MODEL_IDS = tuple(_SCHEMAS)

# What the catalog says of each model besides its price (runcomfy-api.md, "Model catalog").
# The display names follow the model pages' titles; the categories are the pages' task.
_ENTRIES: dict[str, dict[str, Any]] = {
    TEXT_TO_IMAGE: {"display_name": "Nano Banana 2 Text to Image", "categories": ["text-to-image"]},
    EDIT: {"display_name": "Nano Banana 2 Edit", "categories": ["image-to-image"]},
}


def catalog_entry(model_id: str) -> dict[str, Any]:
    """``display_name`` and ``categories`` of a served model (KeyError for others)."""
    return copy.deepcopy(_ENTRIES[model_id])


def input_schema(model_id: str) -> dict[str, Any]:
    """A fresh copy of a served model's input schema (KeyError for others)."""
    return copy.deepcopy(_SCHEMAS[model_id])


def defaults(model_id: str) -> dict[str, Any]:
    """Every field's documented default, as fresh values."""
    return {name: copy.deepcopy(spec["default"]) for name, spec in _SCHEMAS[model_id]["properties"].items()}
