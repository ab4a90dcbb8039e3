"""Nano Banana 2 text-to-image node."""

from __future__ import annotations

from ..client.model.schemas import TEXT_TO_IMAGE, get_schema
from .base import NanoBanana2Node
from .runner import run_generation
from .widgets import schema_widgets


class RunComfyNanoBanana2TextToImage(NanoBanana2Node):
    """Generate images from a prompt with Nano Banana 2 on RunComfy (billed per image)."""

    DESCRIPTION = (
        "Generates images from a text prompt with Google's Nano Banana 2 on RunComfy's Model API. "
        "Each run is billed by RunComfy; unchanged inputs reuse the cached result. Needs "
        "RUNCOMFY_API_TOKEN in ComfyUI's environment."
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": schema_widgets(get_schema(TEXT_TO_IMAGE)), "hidden": dict(cls.HIDDEN)}

    async def generate(self, unique_id=None, **widgets):
        return await run_generation(TEXT_TO_IMAGE, widgets, node_id=unique_id)
