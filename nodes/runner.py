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

from ..client import FinishedJob, JobCancelledError, Jobs, JobUpdate, Stage, Stop, load_settings, shared_jobs
from ..client.errors import ConfigurationError, OfflineError, ResultError
from ..client.job.jobs import NOTHING_SENT, collect_hint
from ..client.job.stop import StopRequested
from . import comfy_runtime
from .comfy_runtime import NodeFeedback, raise_interrupted
from .offline import offline_flag, offline_message
from .output import NodeOutput, widget_values
from .output_checks import output_notes
from .result_images import ResultImage, decode_into, inspect_result, new_batch
from .user_language import finished_line, in_user_language, status_line, user_locale, with_headline
from .workers import in_worker

TICK_SECONDS = 0.1
TYPICAL_RUN_SECONDS = 20.0
_STAGE_PROGRESS = {
    Stage.SUBMITTING: 0.02, Stage.SUBMITTED: 0.05, Stage.QUEUED: 0.08, Stage.RUNNING: 0.15, Stage.DOWNLOADING: 0.9,
}
Prepare = Callable[[Mapping[str, Any]], Awaitable[tuple[Mapping[str, Any], Sequence[str]]]]


class _Progress:
    """Turns job updates into a progress bar and a status line with the request id, in ``locale``."""

    def __init__(self, feedback: NodeFeedback, locale: str) -> None:
        self.feedback = feedback
        self.locale = locale
        self.last_stage: Stage | None = None
        self.expected_run = TYPICAL_RUN_SECONDS
        self.running_since: float | None = None

    def __call__(self, update: JobUpdate) -> None:
        if update.stage is Stage.RUNNING and self.running_since is None:
            self.running_since = time.monotonic()
            self.expected_run = update.expected_seconds or TYPICAL_RUN_SECONDS
        if update.stage in _STAGE_PROGRESS:
            self.feedback.progress(_STAGE_PROGRESS[update.stage])
        self.last_stage = update.stage
        self.feedback.status(status_line(update, self.locale))

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


def _reused_from(job: FinishedJob) -> str | None:
    return job.reused_at.astimezone().strftime("%Y-%m-%d %H:%M") if job.reused_at is not None else None


def _describe_result(job: FinishedJob, images: torch.Tensor, *, collected: bool) -> str:
    count, height, width = images.shape[0], images.shape[1], images.shape[2]
    if job.reused_at is not None:
        price = f"reused the result of request {job.request_id} from {_reused_from(job)}, not billed again"
    else:
        price = f"${job.cost:.3f}" if job.cost is not None else "cost not reported"
        if collected:
            price = f"{price} when it ran; collecting it is free"
    model = f"{job.model_id} · " if job.model_id else ""
    return f"{model}request {job.request_id} · {job.status} · {price} · {count} image(s) {width}×{height}"


Work = Callable[[Jobs, Stop, _Progress], Awaitable[tuple[FinishedJob, Sequence[str]]]]


async def run_node(
    node_id: str | None, work: Work, *, inputs: Mapping[str, Any] | None = None, collected: bool = False
) -> NodeOutput:
    """Run a node's ``work`` (which ends in a finished job and notes) and return
    ``(IMAGE batch, info text)`` with the run's summary for the editor (``inputs``:
    the widget values the run was made with), showing its progress on the node.

    The token is required before the work starts. A Stop before anything was
    submitted ends the node with ComfyUI's interrupt (no error popup); a Stop
    after a submit ends it with the job's error, which names the request id and
    says whether the job was cancelled or may be billed.
    """
    locale = user_locale()
    try:
        jobs = shared_jobs(load_settings())
    except ConfigurationError:
        flag = offline_flag()
        if flag is not None:  # offline no token is needed: say why nothing runs, not how to sign in
            raise OfflineError(offline_message(flag)) from None
        raise
    stop = Stop(check=comfy_runtime.processing_interrupted)
    feedback = NodeFeedback(node_id, on_stop=stop.set)  # a Stop ComfyUI's progress hook consumed
    progress = _Progress(feedback, locale)
    ticker = asyncio.create_task(progress.tick())
    try:
        job, notes = await work(jobs, stop, progress)
    except (JobCancelledError, StopRequested) as exc:
        if not stop.is_set():
            raise
        if isinstance(exc, JobCancelledError) and exc.request_id:
            # A job exists on RunComfy: ComfyUI keeps an interrupt's message nowhere (its
            # /history says only "execution_interrupted"), so the job's own error ends the
            # node, and /history, the queue panel and the log keep its request id and
            # whether it was cancelled or may be billed.
            in_user_language(exc, locale, progress.last_stage)
            feedback.status(str(exc))
            raise
        message = with_headline(locale, "stoppedBeforeSubmit", NOTHING_SENT)
        feedback.status(message)
        raise_interrupted(message)  # nothing was sent: the quiet end ComfyUI gives a Stop
    finally:
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
        await feedback.settle()
    try:
        images, padding_notes = await _to_tensor(job.files)
    except (ValueError, MemoryError, RuntimeError) as error:  # RuntimeError: torch could not allocate
        raise ResultError(
            f"The job's results cannot be turned into an IMAGE batch: {error}; {collect_hint(job.request_id)}",
            request_id=job.request_id,
        ) from None
    check_lines, warnings = output_notes(job.files, images, inputs or {})  # sizes asked vs got, duplicates
    info_lines = [_describe_result(job, images, collected=collected), *notes, *padding_notes, *check_lines]
    feedback.progress(1.0)
    await feedback.settle()
    shown = finished_line(
        locale, info_lines[0], model_id=job.model_id, request_id=job.request_id, status=job.status, cost=job.cost,
        reused_from=_reused_from(job), collected=collected, count=images.shape[0], width=images.shape[2],
        height=images.shape[1],
    )
    feedback.status(" · ".join([shown, *padding_notes, *warnings]))
    run = {
        "model_id": job.model_id, "request_id": job.request_id, "status": job.status, "cost_usd": job.cost,
        "reused": job.reused_at is not None, "collected": collected, "inputs": widget_values(inputs or {}),
    }
    return NodeOutput(images, "\n".join(info_lines), run)


def _stored_or_refuse(found: FinishedJob | None, flag: str) -> FinishedJob:
    """Offline (``flag``): the stored result, or the one-line refusal; nothing was sent either way."""
    if found is None:
        raise OfflineError(offline_message(flag))
    return found


async def run_generation(
    model_id: str, inputs: Mapping[str, Any], *, node_id: str | None, prepare: Prepare | None = None
) -> NodeOutput:
    """One paid generation for a node; ``prepare`` (e.g. encoding large images) runs
    after the token check and stops at Stop; the same inputs are never paid twice
    unless reuse is switched off in the config (``reuse_results``)."""

    async def work(jobs: Jobs, stop: Stop, progress: _Progress) -> tuple[FinishedJob, Sequence[str]]:
        final, notes = (await stop.race(prepare(inputs))) if prepare is not None else (inputs, ())
        for note in notes:
            progress.feedback.status(note)
        reuse = jobs.client.settings.reuse_results
        flag = offline_flag()
        if flag is not None:
            found = await jobs.stored(model_id, final, on_update=progress, process=_inspect) if reuse else None
            return _stored_or_refuse(found, flag), notes
        return await jobs.run(model_id, final, on_update=progress, stop=stop, process=_inspect, reuse=reuse), notes

    return await run_node(node_id, work, inputs=inputs)


async def collect_result(request_id: str, *, node_id: str | None) -> NodeOutput:
    """A job submitted earlier, followed to its end and collected: never submits, free."""

    async def work(jobs: Jobs, stop: Stop, progress: _Progress) -> tuple[FinishedJob, Sequence[str]]:
        flag = offline_flag()
        if flag is not None:
            return _stored_or_refuse(await jobs.collect_stored(request_id, on_update=progress, process=_inspect),
                                     flag), ()
        return await jobs.collect(request_id, on_update=progress, stop=stop, process=_inspect), ()

    return await run_node(node_id, work, inputs={"request_id": request_id}, collected=True)
