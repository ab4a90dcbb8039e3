"""The usual way, in plain httpx / Pillow / numpy: what each figure of the pack is compared with.

Each baseline is the simple, common implementation of the same job, run in
the same process and the same run as the pack, so the report compares ratios
rather than absolute times on a noisy machine.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Sequence

import httpx
import numpy as np
import torch
from PIL import Image

TERMINAL = ("completed", "failed", "cancelled")
TEXT_TO_IMAGE_PATH = "/v1/models/google/nano-banana-2/text-to-image"


class Poller:
    """A minimal client: submit, poll /status every ``every`` seconds, read /result, then
    download and decode each image one after another, the float conversion in numpy."""

    def __init__(self, url: str, token: str, every: float) -> None:
        self.url = url
        self.headers = {"Authorization": f"Bearer {token}"}
        self.every = every

    async def generate(self, inputs: dict[str, Any]) -> tuple[torch.Tensor, float, float]:
        """Returns (IMAGE batch, start, end), like the node's output."""
        started = time.monotonic()
        async with httpx.AsyncClient(trust_env=False, timeout=60.0) as http:
            async def api(method: str, path: str, **kwargs: Any) -> Any:
                return (await http.request(method, self.url + path, headers=self.headers, **kwargs)).json()

            request_id = (await api("POST", TEXT_TO_IMAGE_PATH, json=inputs))["request_id"]
            while (await api("GET", f"/v1/requests/{request_id}/status"))["status"] not in TERMINAL:
                await asyncio.sleep(self.every)
            result = await api("GET", f"/v1/requests/{request_id}/result")
            frames = []
            for url in result["output"]["images"]:  # files come from a CDN: no token
                data = (await http.get(url)).content
                with Image.open(io.BytesIO(data)) as image:
                    frames.append(np.asarray(image.convert("RGB")).astype(np.float32) / 255.0)
        return torch.from_numpy(np.stack(frames)), started, time.monotonic()

    def side_by_side(self, jobs: Sequence[dict[str, Any]], stagger: float) -> list[tuple[torch.Tensor, float, float]]:
        """Jobs started ``stagger`` apart, each in its own thread and event loop as separate
        scripts would be, so their polls and downloads do not wait on each other."""
        def one(index: int) -> tuple[torch.Tensor, float, float]:
            time.sleep(index * stagger)
            return asyncio.run(self.generate(jobs[index]))

        with ThreadPoolExecutor(max_workers=max(1, len(jobs))) as pool:
            return list(pool.map(one, range(len(jobs))))


def png_body(frame: torch.Tensor) -> tuple[bytes, int]:
    """An IMAGE frame as ComfyUI's SaveImage and most API nodes send it: numpy float → uint8,
    Pillow's default PNG, a data URI in a JSON body. Returns the body and the PNG's size."""
    pixels = np.clip(255.0 * frame.cpu().numpy(), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    uri = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
    return json.dumps({"prompt": "x", "image_urls": [uri]}).encode(), buffer.tell()


def jpeg_q95(pixels: np.ndarray) -> bytes:
    """The quality reference: uint8 pixels saved as Pillow JPEG quality 95 (its defaults otherwise)."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()
