"""One paid generation from start to finish: submit, follow, download.

This is what both the ComfyUI nodes and the command line call, so the rules
that protect the user's money live in one place: inputs are checked before
anything is sent, a submit is never repeated, a Stop cancels the remote job,
and results are downloaded at once (their URLs may expire).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Generic, Mapping, TypeVar

from .api import RunComfyClient
from .errors import JobCancelledError
from .polling import JobUpdate, JobWatcher, UpdateCallback
from .responses import JobResult
from .schemas import get_schema

T = TypeVar("T")
DEFAULT_TIMEOUT = 900.0


@dataclass(frozen=True)
class FinishedJob(Generic[T]):
    """A completed job and its downloaded (and optionally processed) files, in API order."""

    request_id: str
    result: JobResult
    files: list[T]

    @property
    def cost(self) -> float | None:
        return self.result.cost


async def _identity(data: bytes) -> Any:
    return data


async def run_job(
    client: RunComfyClient,
    model_id: str,
    inputs: Mapping[str, Any],
    *,
    on_update: UpdateCallback | None = None,
    cancel: asyncio.Event | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    process: Callable[[bytes], Awaitable[T]] | None = None,
) -> FinishedJob[T]:
    """Run one job; ``process`` turns each downloaded file into what the caller keeps.

    Files are downloaded concurrently and each is processed as soon as it
    arrives, so decoding overlaps the remaining downloads.
    """
    report = on_update if on_update is not None else (lambda update: None)
    get_schema(model_id).check(inputs)
    client.settings.require_token()
    if cancel is not None and cancel.is_set():
        raise JobCancelledError("Stopped before anything was submitted; nothing was billed")

    async with client.job_slots:
        if cancel is not None and cancel.is_set():
            raise JobCancelledError("Stopped before anything was submitted; nothing was billed")
        report(JobUpdate("submitting"))
        submission = await _submit_to_completion(client, model_id, inputs)
        report(JobUpdate("submitted", submission.request_id))
        kind = (model_id, inputs.get("resolution"), inputs.get("num_images"))
        watcher = JobWatcher(
            client, submission.request_id, kind=kind, on_update=report, cancel=cancel, timeout=timeout
        )
        result = await watcher.wait()

    report(JobUpdate("downloading", result.request_id, detail=f"{len(result.image_urls)} image(s)"))
    handle = process or _identity

    async def fetch(url: str) -> T:
        return await handle(await client.download(url, request_id=result.request_id))

    files = list(await asyncio.gather(*(fetch(url) for url in result.image_urls)))
    cost = f"${result.cost:.3f}" if result.cost is not None else "cost not reported"
    report(JobUpdate("done", result.request_id, result.status, detail=cost))
    return FinishedJob(result.request_id, result, files)


async def _submit_to_completion(client: RunComfyClient, model_id: str, inputs: Mapping[str, Any]):
    """Submit, and if our task is cancelled meanwhile, still learn the id and cancel it.

    Abandoning a submit half-way would leave a billed job nobody can find.
    """
    task = asyncio.ensure_future(client.submit(model_id, inputs))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            submission = await asyncio.wait_for(task, 30.0)
            await asyncio.wait_for(client.cancel(submission.request_id), 5.0)
        raise
