"""Following one submitted job to its end: the one way this pack polls, retries and collects.

Every call from the submit's answer on is free (status, result, cancel, file
downloads), so a ``Journey`` rides out failures with backoff until the job's
deadline or Stop, never longer; then it cancels what can be cancelled and its
error says, with the request id, whether the job may be billed and how to
collect it. It also remembers how the job ended, for the journal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Awaitable, Callable, Hashable, TypeVar

from ..transport.api import RunComfyClient
from ..errors import (
    CutFileError,
    DownloadError,
    JobBlockedError,
    JobCancelledError,
    JobFailedError,
    JobTimeoutError,
    NotFoundError,
    ResultError,
    RunComfyError,
    shorten,
)
from ..ledger.journal import JobState as JournalState
from ..limits import CANCEL_SECONDS, DOWNLOAD_SECONDS, FILE_SECONDS, NOT_FOUND_GRACE_SECONDS, SAME_CUT_LIMIT
from .pacing import PollPacer, RunDurations
from ..transport.responses import CancelOutcome, JobResult, Phase
from ..transport.retry import RetryPolicy
from .stop import Stop, StopRequested
from .updates import JobUpdate, Stage, UpdateCallback

__all__ = ["Journey", "collect_hint", "despite_cancellation"]

log = logging.getLogger("runcomfy")
T = TypeVar("T")
SAFETY_WORDS = ("safety", "blocked", "prohibited", "moderation", "nsfw", "content policy", "filtered")
_STAGE_OF_PHASE = {Phase.QUEUED: Stage.QUEUED, Phase.RUNNING: Stage.RUNNING, Phase.COMPLETED: Stage.FINISHING}


class _DeadlineReached(Exception):
    """The job's overall wait limit passed; ``last`` is the failure being ridden out, if any."""

    def __init__(self, last: RunComfyError | None = None) -> None:
        super().__init__(str(last or "deadline"))
        self.last = last

    def during(self) -> str:
        return f" (last error: {self.last})" if self.last is not None else ""


class Journey:
    """One submitted job, from its request id to its files in hand.

    Every call from here on is free, so failures are ridden out (with
    backoff) until the job's deadline or Stop, never longer; then what can be
    cancelled is cancelled and the error says whether the job may be billed.
    """

    def __init__(
        self,
        client: RunComfyClient,
        request_id: str,
        *,
        kind: Hashable,
        report: UpdateCallback,
        stop: Stop,
        timeout: float,
        retry: RetryPolicy,
        durations: RunDurations,
        fresh: bool = True,
    ) -> None:
        self.client = client
        self.retry = retry
        self.durations = durations
        self.request_id = request_id
        self.kind = kind
        self.report = report
        self.stop = stop
        self.timeout = timeout
        self.fresh = fresh  # submitted just now, not resumed or collected
        self.submitted_at = time.monotonic()  # the submit has just been answered, or following starts
        self.deadline = self.submitted_at + timeout
        self.pacer = PollPacer(expected_run=self.durations.expected(kind), spread=self.durations.spread(kind))
        self._last_seen: tuple | None = None
        self._last_poll_at: float | None = None
        # What the journal should remember once known: how the job ended, and its reported cost.
        self.ended: JournalState | None = None
        self.cost: float | None = None

    async def result(self) -> JobResult:
        """The completed ``/result``; a typed error (with the request id) for every other end."""
        try:
            return await self._follow()
        except StopRequested:
            try:
                error = await self._cancel_after_stop()
            except asyncio.CancelledError:
                # Cancelled while cancelling: ComfyUI closes a prompt's loop once one node raised
                # its interrupt, and that cancels every task, our cancel call's too. Ask again.
                await self._cancel_despite_cancellation()
                raise
            raise error from None
        except _DeadlineReached as reached:
            raise await self._give_up(reached) from None
        except asyncio.CancelledError:
            # Our task was cancelled (not the polite Stop path): still try not to pay.
            await self._cancel_despite_cancellation()
            raise

    async def _cancel_despite_cancellation(self) -> None:
        """One cancel call, best effort, carried through our task's cancellation (in a task
        made now, so a closing loop's one round of cancelling has passed it by)."""
        with contextlib.suppress(Exception):
            await despite_cancellation(asyncio.wait_for(self.client.cancel(self.request_id), CANCEL_SECONDS))

    async def files(self, result: JobResult, process: Callable[[bytes], Awaitable[T]]) -> list[T]:
        """Every result file, downloaded (retried through failures) and processed, in API order."""
        self.report(JobUpdate(Stage.DOWNLOADING, self.request_id, detail=f"{len(result.image_urls)} image(s)"))
        until = max(self.deadline, time.monotonic() + min(DOWNLOAD_SECONDS, self.timeout))

        async def one(number: int, url: str) -> T:
            cuts: list[tuple[int, str]] = []  # the current streak of cut-off downloads of this file
            data = await self._free(lambda: self._download_watching_cuts(url, number, cuts), until=until)
            try:
                return await process(data)
            except RunComfyError:
                raise
            except Exception as error:  # the file arrived but is not a usable image
                raise ResultError(
                    f"Result {number} of the job cannot be used: {error}", request_id=self.request_id
                ) from None

        tasks = [asyncio.ensure_future(one(number, url)) for number, url in enumerate(result.image_urls, start=1)]
        try:
            return list(await asyncio.gather(*tasks))
        except StopRequested:
            raise JobCancelledError(
                f"Stopped while downloading: the job finished on RunComfy and is billed; {collect_hint(self.request_id)}",
                request_id=self.request_id,
            ) from None
        except _DeadlineReached as reached:
            raise DownloadError(
                f"Could not download the results in time{reached.during()}: the job finished on RunComfy and "
                f"is billed; {collect_hint(self.request_id)}",
                request_id=self.request_id,
            ) from None
        finally:
            for task in tasks:
                task.cancel()

    async def _download_watching_cuts(self, url: str, number: int, cuts: list[tuple[int, str]]) -> bytes:
        """``_download``, but the same cut-off bytes ``SAME_CUT_LIMIT`` times in a row end the
        retries at once: RunComfy's stored file is damaged, and waiting would not mend it."""
        try:
            return await self._download(url)
        except CutFileError as cut:
            seen = (cut.length, cut.sha256)
            if cuts and cuts[-1] != seen:
                cuts.clear()  # different bytes: a cut in transit, which may mend
            cuts.append(seen)
            if len(cuts) < SAME_CUT_LIMIT:
                raise
            raise DownloadError(
                f"RunComfy's file for image {number} is damaged: it came cut off the same way ({cut.length} bytes, "
                f"SHA-256 {cut.sha256[:12]}) {len(cuts)} times in a row. The job finished on RunComfy and "
                f"is billed; {collect_hint(self.request_id)}",
                request_id=self.request_id,
            ) from None
        except RunComfyError:
            cuts.clear()
            raise

    async def _download(self, url: str) -> bytes:
        """One attempt at one file, bounded in time and given up at Stop."""
        try:
            return await self.stop.race(
                asyncio.wait_for(self.client.download(url, request_id=self.request_id), FILE_SECONDS)
            )
        except asyncio.TimeoutError:
            raise DownloadError(
                f"A result file took longer than {FILE_SECONDS:.0f} s to download", request_id=self.request_id,
                transient=True,
            ) from None

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
        self.cost = result.cost
        if result.phase is Phase.COMPLETED and not result.error and result.image_urls:
            self.ended = JournalState.COMPLETED
            return result
        self.ended = JournalState.CANCELLED if result.phase is Phase.CANCELLED else JournalState.FAILED
        raise _job_error(result)

    async def _poll(self, call: Callable[[str], Awaitable[T]]) -> T:
        self.pacer.spend()
        return await self._free(lambda: call(self.request_id))

    async def _free(
        self, call: Callable[[], Awaitable[T]], *, until: float | None = None, stoppable: bool = True
    ) -> T:
        """A free call, repeated through transient failures with backoff until ``until``
        (the job's deadline by default) or Stop."""
        failures = 0
        while True:
            try:
                answer = await call()
            except RunComfyError as error:
                if not self._worth_repeating(error):
                    if isinstance(error, NotFoundError) and error.status_code == 404:
                        self.ended = JournalState.EXPIRED  # unknown, deleted or expired on RunComfy
                    raise
                failures += 1
                if failures == 1:
                    self.report(JobUpdate(Stage.RETRYING, self.request_id, detail=shorten(str(error), 100)))
                wait = self.retry.delay(failures, getattr(error, "retry_after", None))
                log.info("%s; retry %d in %.2f s", error, failures, wait)
                try:
                    await self._pause(wait, until=until, stoppable=stoppable)
                except _DeadlineReached:
                    raise _DeadlineReached(error) from None
                continue
            if failures:
                self._last_seen = None  # show the job's state again after the "retrying" line
            return answer

    def _worth_repeating(self, error: RunComfyError) -> bool:
        """Transient errors are; so is a 404 just after our own submit (the id may not be visible yet)."""
        just_submitted = self.fresh and time.monotonic() - self.submitted_at < NOT_FOUND_GRACE_SECONDS
        return error.transient or (isinstance(error, NotFoundError) and error.status_code == 404 and just_submitted)

    async def _pause(self, seconds: float, *, until: float | None = None, stoppable: bool = True) -> None:
        if time.monotonic() + seconds > (self.deadline if until is None else until):
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

    async def _cancel(self) -> CancelOutcome:
        """Ask RunComfy to cancel, retried for up to ``CANCEL_SECONDS``, whatever Stop says."""
        until = time.monotonic() + CANCEL_SECONDS
        return await self._free(lambda: self.client.cancel(self.request_id), until=until, stoppable=False)

    async def _cancel_after_stop(self) -> JobCancelledError:
        """The user asked to stop: cancel on RunComfy if still possible; the error to raise."""
        self.report(JobUpdate(Stage.CANCELLING, self.request_id))
        try:
            outcome = await self._cancel()
        except (RunComfyError, _DeadlineReached) as exc:
            self.report(JobUpdate(Stage.NOT_CANCELLABLE, self.request_id, detail="cancel call failed"))
            reason = exc.last if isinstance(exc, _DeadlineReached) else exc
            return JobCancelledError(
                f"Stopped waiting, but the cancel call failed ({reason}); the job may still run and be billed: "
                f"{collect_hint(self.request_id)}",
                request_id=self.request_id,
            )
        if outcome.cancelled:
            self.ended = JournalState.CANCELLED
            self.report(JobUpdate(Stage.CANCELLED, self.request_id, outcome.said))
            return JobCancelledError(
                "Cancelled on RunComfy while still queued: nothing is billed", request_id=self.request_id
            )
        self.report(JobUpdate(Stage.NOT_CANCELLABLE, self.request_id, outcome.said))
        return JobCancelledError(
            "Stopped waiting, but RunComfy cannot cancel a job that is already running: it will finish "
            f"and may be billed; {collect_hint(self.request_id)}",
            request_id=self.request_id,
        )

    async def _give_up(self, reached: _DeadlineReached) -> JobTimeoutError:
        """The deadline passed: cancel the job if it is still queued; the error to raise."""
        with contextlib.suppress(RunComfyError, _DeadlineReached):
            outcome = await self._cancel()
            if outcome.cancelled:
                self.ended = JournalState.CANCELLED
                self.report(JobUpdate(Stage.CANCELLED, self.request_id, outcome.said))
                return JobTimeoutError(
                    f"Gave up waiting after {self.timeout:.0f} s with the job still queued, and cancelled it "
                    "on RunComfy: nothing is billed",
                    request_id=self.request_id,
                )
        return JobTimeoutError(
            f"Gave up waiting after {self.timeout:.0f} s{reached.during()}; the job may still finish and be "
            f"billed: {collect_hint(self.request_id)}",
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


def collect_hint(request_id: str) -> str:
    """How to get a paid job's images later, without paying again."""
    return (
        f"collect it later, free, with the 'Nano Banana 2 Result by Request ID' node or "
        f"'python <pack folder> result {request_id}'"
    )


def _job_error(result: JobResult) -> RunComfyError:
    """The error for a finished job that did not end in images: RunComfy's reason when it gave one."""
    if result.phase is Phase.CANCELLED:
        return JobCancelledError("The job was cancelled on RunComfy's side", request_id=result.request_id)
    if result.phase is Phase.COMPLETED and not result.error:
        return JobFailedError(
            "RunComfy reported the job completed but sent no image; it may be billed: check your dashboard",
            request_id=result.request_id,
        )
    reason = result.error or "no reason given"
    if any(word in reason.lower() for word in SAFETY_WORDS):
        return JobBlockedError(
            f"Blocked by the model's safety filter: {reason}; rephrase the prompt or raise safety_tolerance",
            reason=reason,
            request_id=result.request_id,
        )
    return JobFailedError(f"The job failed on RunComfy: {reason}", reason=reason, request_id=result.request_id)


async def despite_cancellation(work: Awaitable[T]) -> T:
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
