"""One paid generation from start to finish: the one home of job orchestration.

``Jobs`` runs jobs for one account on one event loop. Beyond the HTTP calls of
``RunComfyClient`` it owns everything a job's journey needs: the pre-submit
gate (inputs checked once, Stop read right before each POST), the per-account
job slots, what was learned about run durations, poll pacing, and retries of
free calls. Both the ComfyUI nodes and the command line call ``Jobs.run``, so
the rules that protect the user's money live here and nowhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
import weakref
from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable, Callable, Generic, Hashable, Mapping, TypeVar

from .api import RunComfyClient
from .config import Settings
from .errors import (
    JobBlockedError,
    JobCancelledError,
    JobFailedError,
    JobTimeoutError,
    RateLimitedError,
    RunComfyError,
    SubmitNotSentError,
)
from .limits import JOB_DEADLINE_SECONDS
from .pacing import PollPacer, RunDurations
from .request import JobRequest
from .responses import CancelOutcome, JobResult, Phase
from .retry import RetryPolicy
from .stop import Stop, StopRequested

__all__ = ["FinishedJob", "JobUpdate", "Jobs", "Stage", "shared_jobs"]

log = logging.getLogger("runcomfy")
T = TypeVar("T")
SAFETY_WORDS = ("safety", "blocked", "prohibited", "moderation", "nsfw", "content policy", "filtered")


class Stage(str, enum.Enum):
    """Where a job is, as the user is told."""

    SUBMITTING = "submitting"
    SUBMITTED = "submitted"
    QUEUED = "queued"
    RUNNING = "running"
    FINISHING = "finishing"
    OTHER_STATUS = "status"  # a status word this pack does not know: still waiting
    RETRYING = "retrying"
    DOWNLOADING = "downloading"
    DONE = "done"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"
    NOT_CANCELLABLE = "not_cancellable"


_STAGE_OF_PHASE = {Phase.QUEUED: Stage.QUEUED, Phase.RUNNING: Stage.RUNNING, Phase.COMPLETED: Stage.FINISHING}


@dataclass(frozen=True)
class JobUpdate:
    """One change worth telling the user about."""

    stage: Stage
    request_id: str | None = None
    status: str | None = None
    queue_position: int | None = None
    detail: str | None = None
    expected_seconds: float | None = None  # how long a running job of this kind usually runs

    def describe(self) -> str:
        """A short line for a status display."""
        rid = f" · {self.request_id}" if self.request_id else ""
        if self.stage is Stage.QUEUED and self.queue_position is not None:
            return f"queued (position {self.queue_position}){rid}"
        if self.stage is Stage.OTHER_STATUS:
            return f"RunComfy says {self.status!r}{rid}"
        return f"{self.stage.value}{': ' + self.detail if self.detail else ''}{rid}"


UpdateCallback = Callable[[JobUpdate], None]


@dataclass(frozen=True)
class FinishedJob(Generic[T]):
    """A completed job and its downloaded (and optionally processed) files, in API order."""

    request_id: str
    result: JobResult
    files: list[T]

    @property
    def cost(self) -> float | None:
        return self.result.cost


class _DeadlineReached(Exception):
    """The job's overall wait limit passed."""


class Jobs:
    """Runs jobs for one account on one event loop; see the module docstring."""

    def __init__(
        self,
        client: RunComfyClient,
        *,
        durations: RunDurations | None = None,
        retry: RetryPolicy = RetryPolicy(),
        max_concurrent_jobs: int = 8,
    ) -> None:
        self.client = client
        self.durations = durations if durations is not None else RunDurations()
        self.retry = retry
        # Caps how many jobs one account runs at once (a list of prompts fans out).
        self._slots = asyncio.Semaphore(max_concurrent_jobs)

    async def run(
        self,
        model_id: str,
        inputs: Mapping[str, Any],
        *,
        on_update: UpdateCallback | None = None,
        stop: Stop | None = None,
        timeout: float = JOB_DEADLINE_SECONDS,
        process: Callable[[bytes], Awaitable[T]] | None = None,
    ) -> FinishedJob[T]:
        """Run one job; ``process`` turns each downloaded file into what the caller keeps.

        Files are downloaded concurrently and each is processed as soon as it
        arrives, so decoding overlaps the remaining downloads.
        """
        request = JobRequest.checked(model_id, inputs)
        report = _best_effort(on_update)
        stop = stop if stop is not None else Stop()
        try:
            async with self._slot(stop):
                request_id = await self._submit(request, report, stop)
                report(JobUpdate(Stage.SUBMITTED, request_id))
                follower = _Follower(self, request_id, request.kind, report, stop, timeout)
                result = await follower.wait()
        except StopRequested:
            raise JobCancelledError("Stopped before anything was submitted; nothing was billed") from None

        report(JobUpdate(Stage.DOWNLOADING, result.request_id, detail=f"{len(result.image_urls)} image(s)"))
        handle = process or _identity

        async def fetch(url: str) -> T:
            return await handle(await self.client.download(url, request_id=result.request_id))

        files = list(await asyncio.gather(*(fetch(url) for url in result.image_urls)))
        cost = f"${result.cost:.3f}" if result.cost is not None else "cost not reported"
        report(JobUpdate(Stage.DONE, result.request_id, result.status, detail=cost))
        return FinishedJob(result.request_id, result, files)

    @contextlib.asynccontextmanager
    async def _slot(self, stop: Stop) -> AsyncIterator[None]:
        await stop.race(self._slots.acquire())
        try:
            yield
        finally:
            self._slots.release()

    async def _submit(self, request: JobRequest, report: UpdateCallback, stop: Stop) -> str:
        """Send the one billed call; repeated only when it provably never arrived or was
        turned away unbilled, and never once Stop was pressed (read right before each POST)."""
        report(JobUpdate(Stage.SUBMITTING))
        failures = 0
        while True:
            if stop.is_set():
                raise StopRequested()
            try:
                return await _submit_despite_cancellation(self.client, request)
            except (SubmitNotSentError, RateLimitedError) as error:
                failures += 1
                if self.retry.exhausted(failures):
                    raise
                wait = self.retry.delay(failures, getattr(error, "retry_after", None))
                log.info("The submit was not accepted (%s); sending it again in %.1f s (not billed)", error, wait)
                if await stop.sleep(wait):
                    raise StopRequested() from None


class _Follower:
    """Polls one job until ``/result`` says it is over, reporting every change."""

    def __init__(
        self, jobs: Jobs, request_id: str, kind: Hashable, report: UpdateCallback, stop: Stop, timeout: float
    ) -> None:
        self.client = jobs.client
        self.retry = jobs.retry
        self.durations = jobs.durations
        self.request_id = request_id
        self.kind = kind
        self.report = report
        self.stop = stop
        self.timeout = timeout
        self.submitted_at = time.monotonic()  # the submit has just been answered
        self.deadline = self.submitted_at + timeout
        self.pacer = PollPacer(expected_run=self.durations.expected(kind), spread=self.durations.spread(kind))
        self._last_seen: tuple | None = None
        self._last_poll_at: float | None = None

    async def wait(self) -> JobResult:
        """The completed ``/result``; a typed error (with the request id) for every other end."""
        try:
            return await self._follow()
        except StopRequested:
            raise await self._cancel_after_stop() from None
        except _DeadlineReached:
            raise JobTimeoutError(
                f"Gave up waiting after {self.timeout:.0f} s; the job may still finish and be billed. "
                "Look it up in your RunComfy dashboard",
                request_id=self.request_id,
            ) from None
        except asyncio.CancelledError:
            # Our task was cancelled (not the polite Stop path): still try not to pay.
            with contextlib.suppress(Exception):
                await _despite_cancellation(asyncio.wait_for(self.client.cancel(self.request_id), 5.0))
            raise

    async def _follow(self) -> JobResult:
        if self.stop.is_set():
            raise StopRequested()
        # A job just accepted is queued: the first look waits like a queued poll would.
        await self._pause(self.pacer.next_delay(Phase.QUEUED))
        while True:
            previous_poll_at = self._last_poll_at
            status = await self._poll(self.client.status)
            self._note(status.phase, status.status, status.queue_position)
            self._last_poll_at = time.monotonic()
            if status.phase.is_terminal:
                break
            await self._pause(self.pacer.next_delay(status.phase))
        while True:  # /status can run ahead of (or disagree with) /result: /result decides
            result = await self._poll(self.client.result)
            if result.phase.is_terminal:
                break
            self._note(result.phase, result.status, result.queue_position)
            await self._pause(self.pacer.next_delay(result.phase))
        if status.phase is Phase.COMPLETED and previous_poll_at is not None:
            self._learn_duration(result, (previous_poll_at + self._last_poll_at) / 2)
        if result.phase is Phase.COMPLETED:
            if not result.image_urls:
                raise JobFailedError("RunComfy reported success but returned no image", request_id=self.request_id)
            return result
        raise _job_error(result)

    async def _poll(self, call: Callable[[str], Awaitable[T]]) -> T:
        self.pacer.spend()
        return await self._free(lambda: call(self.request_id))

    async def _free(self, call: Callable[[], Awaitable[T]], *, stoppable: bool = True) -> T:
        """A free call, repeated through transient failures with backoff (see ``RetryPolicy``)."""
        failures = 0
        while True:
            try:
                return await call()
            except RunComfyError as error:
                if not error.transient:
                    raise
                failures += 1
                if self.retry.exhausted(failures):
                    raise
                wait = self.retry.delay(failures, getattr(error, "retry_after", None))
                log.info("%s; retry %d in %.2f s", error, failures, wait)
                await self._pause(wait, stoppable=stoppable)

    async def _pause(self, seconds: float, *, stoppable: bool = True) -> None:
        if time.monotonic() + seconds > self.deadline:
            raise _DeadlineReached()
        if stoppable:
            if await self.stop.sleep(seconds):
                raise StopRequested()
        else:
            await asyncio.sleep(seconds)

    def _note(self, phase: Phase, status: str, queue_position: int | None) -> None:
        """Report state changes and remember when the job started running."""
        now = time.monotonic()
        if phase is Phase.RUNNING and self.pacer.running_since is None:
            earliest = self._last_poll_at if self._last_poll_at is not None else self.submitted_at
            self.pacer.running_since = (earliest + now) / 2
            self.pacer.start_uncertainty = now - earliest
        seen = (phase, status, queue_position)
        if seen != self._last_seen:
            self._last_seen = seen
            stage = _STAGE_OF_PHASE.get(phase, Stage.OTHER_STATUS)
            self.report(JobUpdate(stage, self.request_id, status, queue_position,
                                  expected_seconds=self.pacer.expected_run))

    async def _cancel_after_stop(self) -> JobCancelledError:
        """The user asked to stop: cancel on RunComfy if still possible; the error to raise."""
        self.report(JobUpdate(Stage.CANCELLING, self.request_id))
        try:
            outcome: CancelOutcome = await self._free(lambda: self.client.cancel(self.request_id), stoppable=False)
        except (RunComfyError, _DeadlineReached) as exc:
            self.report(JobUpdate(Stage.NOT_CANCELLABLE, self.request_id, detail="cancel call failed"))
            return JobCancelledError(
                f"Stopped waiting, but the cancel call failed ({exc}); the job may still run and be billed",
                request_id=self.request_id,
            )
        if outcome.cancelled:
            self.report(JobUpdate(Stage.CANCELLED, self.request_id, outcome.said))
            return JobCancelledError("Cancelled on RunComfy while still queued", request_id=self.request_id)
        self.report(JobUpdate(Stage.NOT_CANCELLABLE, self.request_id, outcome.said))
        return JobCancelledError(
            "Stopped waiting, but RunComfy cannot cancel a job that is already running: it will finish "
            "and may be billed",
            request_id=self.request_id,
        )

    def _learn_duration(self, result: JobResult, finished_about: float) -> None:
        """Teach the pacer how long this kind of job ran.

        The end is taken from RunComfy's own timestamps when it sent them
        (exact, whatever our poll gaps were), else from between our last two polls.
        """
        if self.pacer.running_since is None:
            return
        took = result.run_seconds
        if took is not None and 0 <= took <= self.timeout:
            finished_about = self.submitted_at + took
        self.durations.observe(self.kind, finished_about - self.pacer.running_since)


def _job_error(result: JobResult) -> RunComfyError:
    reason = result.error or "no reason given"
    if result.phase is Phase.CANCELLED:
        return JobCancelledError("The job was cancelled on RunComfy's side", request_id=result.request_id)
    if any(word in reason.lower() for word in SAFETY_WORDS):
        return JobBlockedError(
            f"Blocked by the model's safety filter: {reason}; rephrase the prompt or raise safety_tolerance",
            reason=reason,
            request_id=result.request_id,
        )
    return JobFailedError(f"The job failed on RunComfy: {reason}", reason=reason, request_id=result.request_id)


def _best_effort(on_update: UpdateCallback | None) -> UpdateCallback:
    """A display problem must never decide a paid job's fate: failures are logged once."""
    failed = False

    def report(update: JobUpdate) -> None:
        nonlocal failed
        if on_update is None:
            return
        try:
            on_update(update)
        except Exception:
            if not failed:
                failed = True
                log.exception("Showing the job's progress failed; the job carries on")

    return report


async def _identity(data: bytes) -> Any:
    return data


async def _despite_cancellation(work: Awaitable[T]) -> T:
    """Await ``work`` to its end even if our task is cancelled meanwhile, however
    often; then re-raise the cancellation. For work that must not be abandoned half-way."""
    task = asyncio.ensure_future(work)
    cancelled = False
    while True:
        try:
            result = await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.cancelled():  # the work itself was cancelled (the loop is closing)
                raise
            cancelled = True
            continue
        if cancelled:
            raise asyncio.CancelledError()
        return result


async def _submit_despite_cancellation(client: RunComfyClient, request: JobRequest) -> str:
    """Submit; if our task is cancelled meanwhile, still learn the id and cancel the job.

    Abandoning a submit half-way would leave a billed job nobody can find.
    """
    task = asyncio.ensure_future(client.submit(request.model_id, request.body))
    try:
        return await _despite_cancellation(task)
    except asyncio.CancelledError:
        if task.done() and not task.cancelled() and task.exception() is None:
            with contextlib.suppress(Exception):
                await _despite_cancellation(asyncio.wait_for(client.cancel(task.result()), 10.0))
        raise


# One Jobs per (event loop, account): an httpx.AsyncClient's pooled connections
# belong to the loop that opened them, and ComfyUI runs every prompt on a new
# loop. What was learned about run durations is plain data, so it outlives the
# loops: one record per account.
_PER_LOOP: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple, Jobs]]" = weakref.WeakKeyDictionary()
_DURATIONS: dict[tuple[str, str], RunDurations] = {}


def shared_jobs(settings: Settings) -> Jobs:
    """The process-wide ``Jobs`` for the running event loop and this account.

    Raises ``MissingTokenError`` (nothing sent) when the settings have no token.
    """
    loop = asyncio.get_running_loop()
    per_loop = _PER_LOOP.setdefault(loop, {})
    key = (settings.base_url, settings.account_fingerprint(), settings.download_hosts)
    jobs = per_loop.get(key)
    if jobs is None:
        durations = _DURATIONS.setdefault(key[:2], RunDurations())
        jobs = per_loop[key] = Jobs(RunComfyClient(settings), durations=durations)
    return jobs
