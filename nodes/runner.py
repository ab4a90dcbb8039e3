"""What both nodes do once their widgets arrive: run one job, show it, return tensors.

Kept apart from the node classes so the two nodes differ only in how they
build the request inputs.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from typing import Any, Awaitable, Callable, Mapping, Sequence

import torch

from ..client import JobCancelledError, JobUpdate, Stage, Stop, load_settings, shared_jobs, spend
from ..client.errors import ResultError
from ..client.jobs import NOTHING_SENT, collect_hint
from ..client.stop import StopRequested
from . import comfy_runtime
from .comfy_runtime import NodeFeedback, raise_interrupted
from .output import NodeOutput, widget_values
from .result_images import ResultImage, decode_into, inspect_result, new_batch
from .workers import in_worker

TICK_SECONDS = 0.1
TYPICAL_RUN_SECONDS = 20.0
_STAGE_PROGRESS = {
    Stage.SUBMITTING: 0.02, Stage.SUBMITTED: 0.05, Stage.QUEUED: 0.08, Stage.RUNNING: 0.15, Stage.DOWNLOADING: 0.9,
}
Prepare = Callable[[Mapping[str, Any]], Awaitable[tuple[Mapping[str, Any], Sequence[str]]]]


class _Progress:
    """Turns job updates into a progress bar and a status line with the request id."""

    def __init__(self, feedback: NodeFeedback) -> None:
        self.feedback = feedback
        self.expected_run = TYPICAL_RUN_SECONDS
        self.running_since: float | None = None

    def __call__(self, update: JobUpdate) -> None:
        if update.stage is Stage.RUNNING and self.running_since is None:
            self.running_since = time.monotonic()
            self.expected_run = update.expected_seconds or TYPICAL_RUN_SECONDS
        if update.stage in _STAGE_PROGRESS:
            self.feedback.progress(_STAGE_PROGRESS[update.stage])
        self.feedback.status(update.describe())

    async def tick(self) -> None:
        """Advance the bar smoothly while the job runs (the API gives no percentage)."""
        while True:
            if self.running_since is not None:
                elapsed = time.monotonic() - self.running_since
                self.feedback.progress(0.15 + 0.7 * (1 - math.exp(-elapsed / self.expected_run)))
            await asyncio.sleep(TICK_SECONDS)


async def _inspect(data: bytes) -> ResultImage:
    """Open each download as it arrives; the pixels are decoded once all are in,
    straight into the IMAGE batch (see ``result_images``)."""
    return await in_worker(inspect_result, data)


async def _to_tensor(results: Sequence[ResultImage]) -> tuple[torch.Tensor, tuple[str, ...]]:
    """All results decoded into one batch, frames in parallel on the worker pool."""
    batch, slots, notes = new_batch(results)
    await asyncio.gather(*(in_worker(decode_into, result, slot) for result, slot in zip(results, slots)))
    return batch, notes


def _describe_result(model_id: str, request_id: str, status: str, cost: float | None, images: torch.Tensor) -> str:
    count, height, width = images.shape[0], images.shape[1], images.shape[2]
    price = f"${cost:.3f}" if cost is not None else "cost not reported"
    return f"{model_id} · request {request_id} · {status} · {price} · {count} image(s) {width}×{height}"


async def run_generation(
    model_id: str, inputs: Mapping[str, Any], *, node_id: str | None, prepare: Prepare | None = None
) -> NodeOutput:
    """Run one job for a node and return ``(IMAGE batch, info text)`` with the run's summary.

    The token is required before ``prepare`` (e.g. encoding large images)
    starts; Stop is honoured while preparing, before the submit, and while the
    job is queued (it is then cancelled on RunComfy).
    """
    jobs = shared_jobs(load_settings())
    feedback = NodeFeedback(node_id)
    stop = Stop(check=comfy_runtime.processing_interrupted)
    progress = _Progress(feedback)
    ticker = asyncio.create_task(progress.tick())
    notes: Sequence[str] = ()
    try:
        if prepare is not None:
            inputs, notes = await stop.race(prepare(inputs))
            for note in notes:
                feedback.status(note)
        job = await jobs.run(model_id, inputs, on_update=progress, stop=stop, process=_inspect)
    except (JobCancelledError, StopRequested) as exc:
        message = str(exc) if isinstance(exc, JobCancelledError) else NOTHING_SENT
        if stop.is_set():
            feedback.status(message)
            raise_interrupted(message)
        raise
    finally:
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
    spend.record(job.request_id, job.cost)
    try:
        images, padding_notes = await _to_tensor(job.files)
    except (ValueError, MemoryError, RuntimeError) as error:  # RuntimeError: torch could not allocate
        raise ResultError(
            f"The job's results cannot be turned into an IMAGE batch: {error}; {collect_hint(job.request_id)}",
            request_id=job.request_id,
        ) from None
    info_lines = [_describe_result(model_id, job.request_id, job.result.status, job.cost, images)]
    info_lines += [*notes, *padding_notes]
    feedback.progress(1.0)
    feedback.status(" · ".join(info_lines[:1] + list(padding_notes)))
    run = {"model_id": model_id, "request_id": job.request_id, "status": job.result.status, "cost_usd": job.cost}
    return NodeOutput(images, "\n".join(info_lines), {**run, "inputs": widget_values(inputs)})
