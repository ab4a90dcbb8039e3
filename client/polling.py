"""Following one job to its end: the one way this pack polls.

Polls are paced by a token bucket (on average at most ``rate`` calls a second
per job, short bursts allowed) and shaped by what we know: quick at first,
slower while the job is queued, and, once we have seen how long jobs of the
same kind run, sparse early and dense around the moment this one should end.
That keeps the delay between "done on the server" and "result in hand" small
without hammering the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from dataclasses import dataclass
from datetime import datetime
from statistics import NormalDist
from typing import TYPE_CHECKING, Callable, Hashable

from .errors import JobBlockedError, JobCancelledError, JobFailedError, JobTimeoutError, RunComfyError
from .responses import JobResult, JobStatus, Phase

if TYPE_CHECKING:
    from .api import RunComfyClient

log = logging.getLogger("runcomfy")

SAFETY_WORDS = ("safety", "blocked", "prohibited", "moderation", "nsfw", "content policy", "filtered")


@dataclass(frozen=True)
class JobUpdate:
    """One change worth telling the user about."""

    stage: str  # submitting, submitted, queued, running, finishing, status (other), downloading, done, cancelling, cancelled, not_cancellable
    request_id: str | None = None
    status: str | None = None
    queue_position: int | None = None
    detail: str | None = None

    def describe(self) -> str:
        """A short line for a status display."""
        rid = f" · {self.request_id}" if self.request_id else ""
        if self.stage == "queued" and self.queue_position is not None:
            return f"queued (position {self.queue_position}){rid}"
        if self.stage == "status":
            return f"RunComfy says {self.status!r}{rid}"
        return f"{self.stage}{': ' + self.detail if self.detail else ''}{rid}"


UpdateCallback = Callable[[JobUpdate], None]


class RunDurations:
    """Remembers how long jobs of one kind ran, and how much that varies, to know
    when to look closely. Both are moving averages, so the picture follows the
    service as it speeds up or slows down."""

    def __init__(self, weight: float = 0.4) -> None:
        self._weight = weight
        self._seconds: dict[Hashable, float] = {}
        self._spread: dict[Hashable, float] = {}

    def expected(self, kind: Hashable) -> float | None:
        return self._seconds.get(kind)

    def spread(self, kind: Hashable) -> float | None:
        """Typical distance of one run from the expected duration (None until two were seen)."""
        return self._spread.get(kind)

    def observe(self, kind: Hashable, seconds: float) -> None:
        if seconds <= 0:
            return
        previous = self._seconds.get(kind)
        if previous is None:
            self._seconds[kind] = seconds
            return
        deviation = abs(seconds - previous)
        spread = self._spread.get(kind)
        self._spread[kind] = deviation if spread is None else spread + self._weight * (deviation - spread)
        self._seconds[kind] = previous + self._weight * (seconds - previous)


class PollPacer:
    """When to poll next, within a per-job rate budget.

    Unknown jobs are polled every ``UNLEARNED_INTERVAL`` once running, a
    little under the rate budget so that the queue polls and the final
    /result still leave a whole job near ``rate`` calls a second. Once the
    duration of this kind of job is known, its end is modelled as a normal
    distribution (the learned duration and spread, widened by how uncertain
    the start is) and each poll is placed where it has a fixed chance,
    ``HAZARD``, of being the first to see the job done: far apart while the
    end is unlikely, close together where it is likely. A job that outlives
    its model goes back to the unlearned cadence.

    Dense polls are paid for with what the sparse ones saved: one is made only
    while the job's own average, counting the /result still to come, stays
    within ``rate`` calls a second since the pacer was created (at submit).
    The token bucket caps every schedule, and ``MIN_GAP`` any burst.
    """

    UNLEARNED_INTERVAL = 0.6
    HAZARD = 0.12  # chance that the next poll is the one that finds the job done
    MIN_GAP = 0.17  # at most 6 polls in any second
    SPARSE_INTERVAL = 2.0  # longest gap while a learned job is far from its end
    DEFAULT_SPREAD = 0.1  # σ of the end as a fraction of the duration, until a spread is learned
    MIN_SPREAD = 0.03  # never trust a learned spread narrower than this fraction
    MEASUREMENT_NOISE = 0.05  # seconds
    TAIL_SIGMAS = 2.0  # past this, the model has failed for this job
    UNLIKELY = 0.01  # below this chance that the job has ended, gaps may reach SPARSE_INTERVAL

    def __init__(
        self,
        *,
        expected_run: float | None = None,
        spread: float | None = None,
        rate: float = 2.0,
        burst: float = 8.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.expected_run = expected_run
        self.spread = spread
        self._clock = clock
        self._tokens = 2.0
        self._created_at = self._refilled_at = clock()
        self.polls = 0
        self._queued_polls = 0
        self.running_since: float | None = None
        self.start_uncertainty = 0.0

    def spend(self) -> None:
        """Account for one poll made now."""
        self._refill()
        self._tokens -= 1.0
        self.polls += 1

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._refilled_at) * self.rate)
        self._refilled_at = now

    def next_delay(self, phase: Phase) -> float:
        """Seconds to wait before the next poll."""
        desired = self._desired(phase)
        self._refill()
        shortfall = 1.0 - (self._tokens + desired * self.rate)
        return desired + max(0.0, shortfall / self.rate)

    def expected_end(self) -> NormalDist | None:
        """When this job should end (on ``clock``), once its kind has been seen before."""
        if not self.expected_run or self.running_since is None:
            return None
        if self.spread is None:
            sigma = self.DEFAULT_SPREAD * self.expected_run
        else:  # a mean absolute deviation is ~0.8 σ
            sigma = max(1.25 * self.spread, self.MIN_SPREAD * self.expected_run)
        sigma = math.sqrt(sigma**2 + self.start_uncertainty**2 / 12 + self.MEASUREMENT_NOISE**2)
        return NormalDist(self.running_since + self.expected_run, sigma)

    def _desired(self, phase: Phase) -> float:
        if phase is Phase.QUEUED:
            self._queued_polls += 1
            return min(1.0, 0.25 * 1.6 ** (self._queued_polls - 1))
        if phase is not Phase.RUNNING:
            return 0.5
        end = self.expected_end()
        now = self._clock()
        if end is None or now > end.mean + self.TAIL_SIGMAS * end.stdev:
            return self.UNLEARNED_INTERVAL
        done = end.cdf(now)
        gap = end.inv_cdf(done + self.HAZARD * (1.0 - done)) - now
        # Sparse only while the end is unlikely; where it is likely, never slower than unlearned.
        longest = self.SPARSE_INTERVAL if done < self.UNLIKELY else self.UNLEARNED_INTERVAL
        gap = max(self.MIN_GAP, min(longest, gap))
        if gap < self.UNLEARNED_INTERVAL:  # a dense poll: only with what earlier polls saved
            affordable_at = self._created_at + (self.polls + 2) / self.rate  # this poll and the /result
            gap = min(self.UNLEARNED_INTERVAL, max(gap, affordable_at - now))
        return gap


async def _sleep_unless(event: asyncio.Event | None, seconds: float) -> bool:
    """Sleep, waking early if ``event`` is set; True when it was."""
    if event is None:
        await asyncio.sleep(seconds)
        return False
    if event.is_set():
        return True
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(event.wait(), seconds)
    return event.is_set()


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


class JobWatcher:
    """Polls one job until ``/result`` says it is over, reporting every change."""

    def __init__(
        self,
        client: "RunComfyClient",
        request_id: str,
        *,
        kind: Hashable = None,
        on_update: UpdateCallback | None = None,
        cancel: asyncio.Event | None = None,
        timeout: float = 900.0,
    ) -> None:
        self.client = client
        self.request_id = request_id
        self.kind = kind
        self.on_update = on_update if on_update is not None else (lambda update: None)
        self.cancel = cancel
        self.submitted_at = time.monotonic()  # the submit has just been answered
        self.deadline = self.submitted_at + timeout
        self.timeout = timeout
        self.pacer = PollPacer(
            expected_run=client.run_durations.expected(kind), spread=client.run_durations.spread(kind)
        )
        self._last_seen: tuple | None = None
        self._last_poll_at: float | None = None

    def _report(self, update: JobUpdate) -> None:
        try:
            self.on_update(update)
        except Exception:  # a display problem must never lose a paid job
            log.exception("Progress callback failed")

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
            stage = {Phase.QUEUED: "queued", Phase.RUNNING: "running", Phase.COMPLETED: "finishing"}.get(phase, "status")
            self._report(JobUpdate(stage, self.request_id, status, queue_position))

    async def _pause(self, phase: Phase) -> None:
        delay = self.pacer.next_delay(phase)
        if time.monotonic() + delay > self.deadline:
            raise JobTimeoutError(
                f"Gave up waiting after {self.timeout:.0f} s; the job may still finish and be billed. "
                "Look it up in your RunComfy dashboard",
                request_id=self.request_id,
            )
        if await _sleep_unless(self.cancel, delay):
            await self._cancel_remote()

    async def _cancel_remote(self) -> None:
        """The user asked to stop: cancel on RunComfy if still possible, then raise."""
        self._report(JobUpdate("cancelling", self.request_id))
        try:
            outcome = await self.client.cancel(self.request_id)
        except RunComfyError as exc:
            self._report(JobUpdate("not_cancellable", self.request_id, detail="cancel call failed"))
            raise JobCancelledError(
                f"Stopped waiting, but the cancel call failed ({exc}); the job may still run and be billed",
                request_id=self.request_id,
            ) from None
        if outcome.cancelled:
            self._report(JobUpdate("cancelled", self.request_id, outcome.status))
            raise JobCancelledError("Cancelled on RunComfy while still queued", request_id=self.request_id)
        self._report(JobUpdate("not_cancellable", self.request_id, outcome.status))
        raise JobCancelledError(
            "Stopped waiting, but RunComfy cannot cancel a job that is already running: it will finish "
            "and may be billed",
            request_id=self.request_id,
        )

    async def _poll(self, call):
        self.pacer.spend()
        return await call(self.request_id)

    async def wait(self) -> JobResult:
        """Return the completed ``/result``; raise a typed error for every other end."""
        try:
            return await self._wait()
        except asyncio.CancelledError:
            # Our task was cancelled (not the polite Stop path): still try not to pay.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self.client.cancel(self.request_id)), 5.0)
            raise

    async def _wait(self) -> JobResult:
        if self.cancel is not None and self.cancel.is_set():
            await self._cancel_remote()
        # A job just accepted is queued: the first look waits like a queued poll would.
        await self._pause(Phase.QUEUED)
        while True:
            previous_poll_at = self._last_poll_at
            status: JobStatus = await self._poll(self.client.status)
            self._note(status.phase, status.status, status.queue_position)
            self._last_poll_at = time.monotonic()
            if status.phase.is_terminal:
                break
            await self._pause(status.phase)
        while True:  # /status can run ahead of (or disagree with) /result: /result decides
            result: JobResult = await self._poll(self.client.result)
            if result.phase.is_terminal:
                break
            self._note(result.phase, result.status, result.queue_position)
            await self._pause(result.phase)
        if status.phase is Phase.COMPLETED and previous_poll_at is not None:
            self._learn_duration(result, (previous_poll_at + self._last_poll_at) / 2)
        if result.phase is Phase.COMPLETED:
            if not result.image_urls:
                raise JobFailedError("RunComfy reported success but returned no image", request_id=self.request_id)
            return result
        raise _job_error(result)

    def _learn_duration(self, result: JobResult, finished_about: float) -> None:
        """Teach the pacer how long this kind of job ran.

        The end is taken from RunComfy's own timestamps when it sent them
        (exact, whatever our poll gaps were), else from between our last two polls.
        """
        if self.pacer.running_since is None:
            return
        took = _server_seconds(result.created_at, result.finished_at)
        if took is not None and 0 <= took <= self.timeout:
            finished_about = self.submitted_at + took
        self.client.run_durations.observe(self.kind, finished_about - self.pacer.running_since)


def _server_seconds(started: object, ended: object) -> float | None:
    """Seconds between two ISO-8601 timestamps of the API, or None if either is unreadable."""
    try:
        first, last = (datetime.fromisoformat(str(text).replace("Z", "+00:00")) for text in (started, ended))
        return (last - first).total_seconds()
    except (TypeError, ValueError):  # missing, malformed, or one naive and one aware
        return None
