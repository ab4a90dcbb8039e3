"""Nano Banana 2 edit node: one or more reference images plus a prompt."""

from __future__ import annotations

import asyncio
from typing import Sequence

import torch

from ..client import InlineImage
from ..client.errors import RequestValidationError
from ..client.limits import MAX_INLINE_IMAGE_BYTES, MAX_INLINE_IMAGES_BYTES
from ..client.model.schemas import EDIT, get_schema
from .base import NanoBanana2Node
from .upload_images import EncodedImage, encode_frame, frames_from_images
from .runner import run_generation
from .widgets import schema_widgets
from .workers import in_worker

MAX_IMAGES = get_schema(EDIT).properties["image_urls"]["maxItems"]
# One socket per reference, up to the model's 20, in the order they are sent. The first four are the
# names saved workflows already use; the editor shows them and grows the rest one at a time as
# sockets are connected (web/references/), so every one is declared here for the backend to accept.
IMAGE_SOCKETS = ("images",) + tuple(f"images_{n}" for n in range(2, MAX_IMAGES + 1))


def parse_image_urls(text: str | None) -> list[str]:
    """One URL per line; blank lines and ``#`` comments are ignored."""
    lines = (line.strip() for line in (text or "").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _frames_in_order(sockets: dict[str, torch.Tensor | None]) -> tuple[list[tuple[str, torch.Tensor]], list[str]]:
    """Every frame of every connected socket, labelled, plus a count per socket."""
    labelled: list[tuple[str, torch.Tensor]] = []
    counts: list[str] = []
    for name in IMAGE_SOCKETS:
        batch = sockets.get(name)
        if batch is None:
            continue
        frames = frames_from_images(batch)
        counts.append(f"{name}: {len(frames)}")
        for index, frame in enumerate(frames, start=1):
            labelled.append((f"{name} #{index}" if len(frames) > 1 else name, frame))
    return labelled, counts


def _check_count(frame_count: int, url_count: int, per_socket: str) -> None:
    total = frame_count + url_count
    if total == 0:
        raise RequestValidationError(
            "No reference image: connect an IMAGE to 'images' or put a hosted URL in 'image_urls'",
            field="image_urls",
        )
    if total > MAX_IMAGES:
        raise RequestValidationError(
            f"{total} reference images given ({per_socket}); Nano Banana 2 edit takes at most "
            f"{MAX_IMAGES}: remove {total - MAX_IMAGES}",
            field="image_urls",
        )


async def encode_references(
    sockets: dict[str, torch.Tensor | None], urls: Sequence[str]
) -> tuple[list[InlineImage | str], list[str]]:
    """All reference images as API ``image_urls`` (inline images first, then URLs), plus notes."""
    labelled, counts = _frames_in_order(sockets)
    if urls:
        counts.append(f"image_urls: {len(urls)}")
    _check_count(len(labelled), len(urls), ", ".join(counts) or "none")
    budget = min(MAX_INLINE_IMAGE_BYTES, MAX_INLINE_IMAGES_BYTES // max(1, len(labelled)))
    encoded: list[EncodedImage] = await asyncio.gather(
        *(in_worker(encode_frame, frame, max_bytes=budget) for _, frame in labelled)
    )
    notes = [
        f"{label}: {adjustment}" for (label, _), image in zip(labelled, encoded) for adjustment in image.adjustments
    ]
    return [InlineImage(image.data, image.mime_type) for image in encoded] + list(urls), notes


class RunComfyNanoBanana2Edit(NanoBanana2Node):
    """Edit or combine reference images with a prompt, with Nano Banana 2 on RunComfy."""

    DESCRIPTION = (
        "Edits one or more reference images following a prompt, with Google's Nano Banana 2 on "
        "RunComfy's Model API. Connect up to 20 images in all (batches count frame by frame; the "
        "extra sockets take references of other sizes) and/or hosted URLs. Large images are "
        "downscaled and re-encoded to fit the API's limits. Each run is billed by RunComfy."
    )

    @classmethod
    def INPUT_TYPES(cls):
        socket_tip = "Reference image(s); every frame of the batch is sent, in order."
        optional = {name: ("IMAGE", {"tooltip": socket_tip}) for name in IMAGE_SOCKETS}
        optional["image_urls"] = (
            "STRING",
            {
                "default": "",
                "multiline": True,
                "placeholder": "https://... (one hosted image URL per line)",
                "tooltip": "Hosted reference image URLs, one per line, sent after the connected images.",
            },
        )
        return {
            "required": schema_widgets(get_schema(EDIT)),
            "optional": optional,
            "hidden": dict(cls.HIDDEN),
        }

    async def generate(self, unique_id=None, image_urls: str = "", **inputs):
        sockets = {name: inputs.pop(name, None) for name in IMAGE_SOCKETS}
        urls = parse_image_urls(image_urls)

        async def with_references(widgets):
            references, notes = await encode_references(sockets, urls)
            return {**widgets, "image_urls": references}, notes

        return await run_generation(EDIT, inputs, node_id=unique_id, prepare=with_references)
