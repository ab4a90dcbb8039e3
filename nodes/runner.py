"""What both nodes do once their inputs are ready: run one job, show it, return tensors.

Kept apart from the node classes so the two nodes differ only in how they
build the request body.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from typing import Any, Mapping, Sequence

import torch

from ..client import JobCancelledError, JobUpdate, load_settings, run_job, shared_client, spend
from . import comfy_runtime
from .comfy_runtime import NodeFeedback, raise_interrupted
from .output import NodeOutput, widget_values
from .result_images import ResultImage, inspect_result, results_to_tensor

INTERRUPT_CHECK_SECONDS = 0.1
TYPICAL_RUN_SECONDS = 20.0
_STAGE_PROGRESS = {"submitting": 0.02, "submitted": 0.05, "queued": 0.08, "running": 0.15, "downloading": 0.9}


class _Progress:
    """Turns job updates into a progress bar and a status line with the request id."""

    def __init__(self, feedback: NodeFeedback, expected_run: float | None) -> None:
        self.feedback = feedback
        self.expected_run = expected_run or TYPICAL_RUN_SECONDS
        self.request_id: str | None = None
        self.running_since: float | None = None

    def __call__(self, update: JobUpdate) -> None:
        self.request_id = update.request_id or self.request_id
        if update.stage == "running" and self.running_since is None:
            self.running_since = time.monotonic()
        if update.stage in _STAGE_PROGRESS:
            self.feedback.progress(_STAGE_PROGRESS[update.stage])
        self.feedback.status(update.describe())

    def tick(self) -> None:
        """Advance the bar smoothly while the job runs (the API gives no percentage)."""
        if self.running_since is not None:
            elapsed = time.monotonic() - self.running_since
            self.feedback.progress(0.15 + 0.7 * (1 - math.exp(-elapsed / self.expected_run)))


async def _watch_for_stop(cancel: asyncio.Event, progress: _Progress) -> None:
    while not cancel.is_set():
        if comfy_runtime.processing_interrupted():
            cancel.set()
            return
        progress.tick()
        await asyncio.sleep(INTERRUPT_CHECK_SECONDS)


async def _inspect(data: bytes) -> ResultImage:
    """Check each download as it arrives; the pixels are decoded once all are in,
    straight into the IMAGE batch (no per-frame copies: see ``results_to_tensor``)."""
    return await asyncio.to_thread(inspect_result, data)


def _describe_result(model_id: str, request_id: str, status: str, cost: float | None, images: torch.Tensor) -> str:
    count, height, width = images.shape[0], images.shape[1], images.shape[2]
    price = f"${cost:.3f}" if cost is not None else "cost not reported"
    return f"{model_id} · request {request_id} · {status} · {price} · {count} image(s) {width}×{height}"


async def run_generation(
    model_id: str, inputs: Mapping[str, Any], *, node_id: str | None, notes: Sequence[str] = ()
) -> NodeOutput:
    """Run one job for a node and return ``(IMAGE batch, info text)`` with the run's summary.

    Everything that can be checked is checked before the paid submit; a Stop
    in ComfyUI cancels the remote job while it is still queued.
    """
    settings = load_settings()
    client = shared_client(settings)  # run_job checks inputs and token before anything is sent
    feedback = NodeFeedback(node_id)
    for note in notes:
        feedback.status(note)
    kind = (model_id, inputs.get("resolution"), inputs.get("num_images"))
    progress = _Progress(feedback, client.run_durations.expected(kind))
    cancel = asyncio.Event()
    if comfy_runtime.processing_interrupted():  # Stop came before we started: submit nothing
        cancel.set()
    watcher = asyncio.create_task(_watch_for_stop(cancel, progress))
    try:
        job = await run_job(client, model_id, inputs, on_update=progress, cancel=cancel, process=_inspect)
    except JobCancelledError as exc:
        if cancel.is_set():
            feedback.status(str(exc))
            raise_interrupted(str(exc))
        raise
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    spend.record(job.request_id, job.cost)
    images, padding_notes = await asyncio.to_thread(results_to_tensor, job.files)
    info_lines = [_describe_result(model_id, job.request_id, job.result.status, job.cost, images)]
    info_lines += [*notes, *padding_notes]
    feedback.progress(1.0)
    feedback.status(" · ".join(info_lines[:1] + list(padding_notes)))
    run = {"model_id": model_id, "request_id": job.request_id, "status": job.result.status, "cost_usd": job.cost}
    return NodeOutput(images, "\n".join(info_lines), {**run, "inputs": widget_values(inputs)})
