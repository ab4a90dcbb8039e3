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
import threading
import time
import weakref
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Awaitable, Callable, Generic, Hashable, Mapping, TypeVar

from .api import RunComfyClient
from .config import Settings
from .storage_paths import JOURNAL_FILE_NAME, RESULTS_DIR_NAME, default_data_dir
from .errors import (
    ConfigurationError,
    DownloadError,
    JobBlockedError,
    JobCancelledError,
    JobFailedError,
    JobTimeoutError,
    NotFoundError,
    RateLimitedError,
    ResultError,
    RunComfyError,
    SubmitNotSentError,
    SpendLimitError,
    SubmitOutcomeUnknownError,
    shorten,
)
from .fingerprint import account_fingerprint
from .journal import Action, Claim, Entry, Journal
from .journal import JobState as JournalState
from .limits import (
    CANCEL_SECONDS,
    DOWNLOAD_SECONDS,
    FILE_SECONDS,
    JOB_DEADLINE_SECONDS,
    NOT_FOUND_GRACE_SECONDS,
)
from .pacing import PollPacer, RunDurations
from .request import JobRequest
from .responses import CancelOutcome, JobResult, Phase, check_request_id
from . import spend
from .pricing import Pricing, read_pricing
from .result_store import ResultStore
from .schemas import get_schema
from .retry import RetryPolicy
from .stop import Stop, StopRequested

__all__ = ["FinishedJob", "JobUpdate", "Jobs", "Stage", "collect_hint", "shared_jobs"]

log = logging.getLogger("runcomfy")
T = TypeVar("T")
NOTHING_SENT = "Stopped before anything was submitted; nothing was billed"
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
    REUSED = "reused"  # the same inputs were paid for before: their stored files are returned
    RESUMING = "resuming"  # a job of the same inputs already exists: followed, not submitted


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
        if self.stage is Stage.RESUMING:
            return f"resuming request {self.request_id}: already paid for, not submitted again"
        if self.stage is Stage.REUSED:
            return f"reused the result of request {self.request_id} ({self.detail})"
        return f"{self.stage.value}{': ' + self.detail if self.detail else ''}{rid}"


UpdateCallback = Callable[[JobUpdate], None]


@dataclass(frozen=True)
class FinishedJob(Generic[T]):
    """A completed job and its files (processed by the caller), in API order.

    ``result`` is RunComfy's answer, or None when the files were reused from
    the result store (``reused_at``: when that job was paid for); ``cost`` is
    what this run was billed as RunComfy reported it (None: not reported, or
    nothing billed because the result was reused).
    """

    request_id: str
    model_id: str | None
    status: str
    files: list[T]
    result: JobResult | None = None
    reused_at: datetime | None = None

    @property
    def cost(self) -> float | None:
        return self.result.cost if self.result is not None else None


class _DeadlineReached(Exception):
    """The job's overall wait limit passed; ``last`` is the failure being ridden out, if any."""

    def __init__(self, last: RunComfyError | None = None) -> None:
        super().__init__(str(last or "deadline"))
        self.last = last

    def during(self) -> str:
        return f" (last error: {self.last})" if self.last is not None else ""


class Jobs:
    """Runs jobs for one account on one event loop; see the module docstring."""

    def __init__(
        self,
        client: RunComfyClient,
        *,
        durations: RunDurations | None = None,
        retry: RetryPolicy = RetryPolicy(),
        max_concurrent_jobs: int = 8,
        journal: Journal | None = None,
        store: ResultStore | None = None,
    ) -> None:
        self.client = client
        self.durations = durations if durations is not None else RunDurations()
        self.retry = retry
        self.journal = journal
        self.store = store
        self.account = account_fingerprint(client.settings.base_url, client.settings.token or "")
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
        reuse: bool = True,
    ) -> FinishedJob[T]:
        """Run one job; ``process`` turns each downloaded file into what the caller keeps.

        With a journal, the same inputs never cost twice: a stored result of
        them is returned at once (nothing is sent), a job of them already paid
        for is followed instead of submitting (``reuse=False`` always submits).
        Files are downloaded concurrently and each is processed as soon as it
        arrives, so decoding overlaps the remaining downloads.
        """
        request = JobRequest.checked(model_id, inputs, local_api=self.client.local)
        report = _best_effort(on_update)
        stop = stop if stop is not None else Stop()
        process = process if process is not None else _identity
        while True:
            claim = await self._claim(request, reuse, stop)
            if claim is not None and claim.action is Action.REUSE:
                reused = await self._reuse(claim.entry, report, process)
                if reused is not None:
                    return reused
            if claim is not None and claim.action in (Action.REUSE, Action.RESUME):
                report(JobUpdate(Stage.RESUMING, claim.request_id))
                try:
                    return await self._collect(claim.request_id, request.kind, report, stop, timeout, process)
                except NotFoundError:  # expired or unknown on RunComfy: recorded, then decided again
                    continue
            return await self._submit_and_collect(request, claim, report, stop, timeout, process)

    async def collect(
        self,
        request_id: str,
        *,
        on_update: UpdateCallback | None = None,
        stop: Stop | None = None,
        timeout: float = JOB_DEADLINE_SECONDS,
        process: Callable[[bytes], Awaitable[T]] | None = None,
    ) -> FinishedJob[T]:
        """Follow a job submitted earlier (by this pack or elsewhere) and collect its files.

        Never submits, so it is free. Files already in the result store are taken from there.
        """
        request_id = check_request_id(request_id)
        report = _best_effort(on_update)
        process = process if process is not None else _identity
        entry = await self._journal_call("get", request_id)
        if entry is not None and entry.account == self.account:
            reused = await self._reuse(entry, report, process)
            if reused is not None:
                return reused
        report(JobUpdate(Stage.RESUMING, request_id))
        kind = (entry.model_id, None, None) if entry is not None else (None, None, None)
        return await self._collect(request_id, kind, report, stop or Stop(), timeout, process)

    async def _submit_and_collect(
        self, request: JobRequest, claim: Claim | None, report: UpdateCallback, stop: Stop, timeout: float,
        process: Callable[[bytes], Awaitable[T]],
    ) -> FinishedJob[T]:
        try:
            await self._check_spend_limit(request)
        except SpendLimitError:
            await self._journal_call("release", claim)
            raise
        try:
            await stop.race(self._slots.acquire())
        except StopRequested:
            await self._journal_call("release", claim)
            raise JobCancelledError(NOTHING_SENT) from None
        try:
            try:
                request_id = await self._submit(request, report, stop)
            except StopRequested:
                await self._journal_call("release", claim)
                raise JobCancelledError(NOTHING_SENT) from None
            except SubmitOutcomeUnknownError:
                await self._journal_call("release", claim, maybe_sent=True)
                raise
            except BaseException:
                await self._journal_call("release", claim)
                raise
            if claim is not None:
                await self._journal_call("record_submitted", claim, request_id)
            report(JobUpdate(Stage.SUBMITTED, request_id))
            journey = _Journey(self, request_id, request.kind, report, stop, timeout)
            result = await self._recorded(journey, journey.result(), submitted_here=True)
        finally:
            self._slots.release()
        return await self._finish(journey, result, process)

    async def _collect(
        self, request_id: str, kind: Hashable, report: UpdateCallback, stop: Stop, timeout: float,
        process: Callable[[bytes], Awaitable[T]],
    ) -> FinishedJob[T]:
        """Follow a job that already exists and download its files (no slot: nothing new runs)."""
        journey = _Journey(self, request_id, kind, report, stop, timeout)
        result = await self._recorded(journey, journey.result())
        return await self._finish(journey, result, process)

    async def _finish(
        self, journey: "_Journey", result: JobResult, process: Callable[[bytes], Awaitable[T]]
    ) -> FinishedJob[T]:
        """Download, keep in the store, record the files, process."""

        async def keep_then_process(data: bytes) -> tuple[str | None, T]:
            digest = await asyncio.to_thread(self.store.put, data) if self.store is not None else None
            return digest, await process(data)

        pairs = await journey.files(result, keep_then_process)
        digests = [digest for digest, _ in pairs]
        if all(digests):
            await self._journal_call("record_files", journey.request_id, digests)
        cost = f"${result.cost:.3f}" if result.cost is not None else "cost not reported"
        journey.report(JobUpdate(Stage.DONE, journey.request_id, result.status, detail=cost))
        model_id = journey.kind[0] if isinstance(journey.kind, tuple) else result.model_id
        return FinishedJob(journey.request_id, model_id, result.status, [file for _, file in pairs], result)

    async def _recorded(
        self, journey: "_Journey", following: Awaitable[JobResult], *, submitted_here: bool = False
    ) -> JobResult:
        """Await the job's end, and write what is known of it to the journal, whatever happens;
        the cost of a job this run submitted also counts in this session's spend."""
        try:
            return await following
        finally:
            if journey.ended is not None:
                await self._journal_call("record_state", journey.request_id, journey.ended, journey.cost)
            if submitted_here and journey.ended is not None:
                spend.record(journey.request_id, journey.cost)

    async def _check_spend_limit(self, request: JobRequest) -> None:
        """Refuse before paying when this job's estimated price would pass the daily limit.

        Today's spend is what RunComfy reported for this account's jobs since
        local midnight (the journal); a price that cannot be known counts as 0.
        """
        settings = self.client.settings
        limit = settings.daily_spend_limit_usd
        if limit is None:
            return
        spent = await self._journal_call("spent_today", self.account) or 0.0
        price = await self._price(request)
        if spent + (price or 0.0) <= limit:
            return
        this_job = f"this job (≈ ${price:.2f})" if price is not None else "another job"
        raise SpendLimitError(
            f"Refused before paying: {this_job} would pass your daily spend limit of ${limit:.2f} "
            f"(RunComfy reported ${spent:.2f} spent today); raise or remove it in Settings > RunComfy "
            f'or as "daily_spend_limit_usd" in {settings.config_path or "your RunComfy config file"}'
        )

    async def _price(self, request: JobRequest) -> float | None:
        """The estimated price of this job from the model info (cached a few minutes), or None."""
        key = (self.client.settings.base_url, self.account, request.model_id)
        expires, pricing = _PRICES.get(key, (0.0, None))
        if time.monotonic() >= expires:
            try:
                info = await self.client.model_info(request.model_id)
                resolutions = get_schema(request.model_id).properties["resolution"]["enum"]
                pricing = read_pricing(info, resolutions)
            except RunComfyError as error:
                log.info("No price for the daily limit check: %s", error)
                pricing = None
            _PRICES[key] = (time.monotonic() + PRICE_SECONDS, pricing)
        if pricing is None:
            return None
        _, resolution, count = request.kind
        return pricing.estimate(resolution, count)

    async def _claim(self, request: JobRequest, reuse: bool, stop: Stop) -> Claim | None:
        """Ask the journal whether to reuse, resume or submit (None: no journal)."""
        if self.journal is None:
            return None
        prompt = str(request.inputs.get("prompt", ""))
        is_stored = self.store.has if self.store is not None else None
        claim = await asyncio.to_thread(
            self.journal.claim, request.fingerprint, self.account, model_id=request.model_id, prompt=prompt,
            is_stored=is_stored, reuse=reuse, stop=stop,
        )
        if claim.action is Action.BUSY:
            if stop.is_set():
                raise JobCancelledError(NOTHING_SENT)
            raise JobCancelledError(
                "Another run of the very same inputs (another ComfyUI or the command line) has been submitting "
                "for too long; nothing was sent. Run again to reuse its result once it has one"
            )
        return claim

    async def _reuse(
        self, entry: Entry, report: UpdateCallback, process: Callable[[bytes], Awaitable[T]]
    ) -> FinishedJob[T] | None:
        """The stored files of a completed job, processed; None if any is missing now."""
        if self.store is None or not entry.files or entry.state is not JournalState.COMPLETED:
            return None
        files = [await asyncio.to_thread(self.store.get, digest) for digest in entry.files]
        if any(data is None for data in files):
            return None
        when = entry.created_at.astimezone().strftime("%Y-%m-%d %H:%M")
        report(JobUpdate(Stage.REUSED, entry.request_id, detail=f"paid {when}, not billed again"))
        processed = []
        for number, data in enumerate(files, start=1):
            try:
                processed.append(await process(data))
            except Exception as error:
                raise ResultError(f"Stored result {number} cannot be used: {error}", request_id=entry.request_id) from None
        return FinishedJob(
            entry.request_id, entry.model_id, JournalState.COMPLETED.value, processed, reused_at=entry.created_at
        )

    async def _journal_call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """A journal operation on a worker thread; nothing without a journal (or a claim)."""
        if self.journal is None or any(arg is None for arg in args):
            return None
        return await asyncio.to_thread(getattr(self.journal, name), *args, **kwargs)

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


class _Journey:
    """One submitted job, from its request id to its files in hand.

    Every call from here on is free, so failures are ridden out (with
    backoff) until the job's deadline or Stop, never longer; then what can be
    cancelled is cancelled and the error says whether the job may be billed.
    """

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
        # What the journal should remember once known: how the job ended, and its reported cost.
        self.ended: JournalState | None = None
        self.cost: float | None = None

    async def result(self) -> JobResult:
        """The completed ``/result``; a typed error (with the request id) for every other end."""
        try:
            return await self._follow()
        except StopRequested:
            raise await self._cancel_after_stop() from None
        except _DeadlineReached as reached:
            raise await self._give_up(reached) from None
        except asyncio.CancelledError:
            # Our task was cancelled (not the polite Stop path): still try not to pay.
            with contextlib.suppress(Exception):
                await _despite_cancellation(asyncio.wait_for(self.client.cancel(self.request_id), CANCEL_SECONDS))
            raise

    async def files(self, result: JobResult, process: Callable[[bytes], Awaitable[T]]) -> list[T]:
        """Every result file, downloaded (retried through failures) and processed, in API order."""
        self.report(JobUpdate(Stage.DOWNLOADING, self.request_id, detail=f"{len(result.image_urls)} image(s)"))
        until = max(self.deadline, time.monotonic() + min(DOWNLOAD_SECONDS, self.timeout))

        async def one(number: int, url: str) -> T:
            data = await self._free(lambda: self._download(url), until=until)
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
        """Transient errors are; so is a 404 just after the submit (the id may not be visible yet)."""
        just_submitted = time.monotonic() - self.submitted_at < NOT_FOUND_GRACE_SECONDS
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
_STORAGE: dict[Path, tuple[Journal, ResultStore]] = {}
_PRICES: dict[tuple[str, str, str], tuple[float, Pricing | None]] = {}
PRICE_SECONDS = 300.0
_storage_lock = threading.Lock()


def shared_jobs(settings: Settings) -> Jobs:
    """The process-wide ``Jobs`` for the running event loop and this account, with the
    user's journal and result store (shared by every loop of the process).

    Raises ``MissingTokenError`` (nothing sent) when the settings have no token.
    """
    loop = asyncio.get_running_loop()
    per_loop = _PER_LOOP.setdefault(loop, {})
    journal, store = shared_storage(settings)
    key = (settings.base_url, settings.account_fingerprint(), settings.download_hosts, id(journal))
    jobs = per_loop.get(key)
    if jobs is None:
        durations = _DURATIONS.setdefault(key[:2], RunDurations())
        jobs = Jobs(RunComfyClient(settings), durations=durations, journal=journal, store=store)
        per_loop[key] = jobs
    return jobs


def shared_storage(settings: Settings) -> tuple[Journal | None, ResultStore | None]:
    """The journal and result store in the user's data folder, one of each per process;
    the store's size cap follows ``settings`` (the config file's ``result_store_gib``).

    A data folder that cannot be used (e.g. one inside the pack) means no
    journal, with a warning: generation never stops because of it.
    """
    try:
        folder = default_data_dir()
    except ConfigurationError as error:
        log.warning("No job journal or result store: %s", error)
        return None, None
    with _storage_lock:
        if folder not in _STORAGE:
            _STORAGE[folder] = (Journal(folder / JOURNAL_FILE_NAME), ResultStore(folder / RESULTS_DIR_NAME))
        journal, store = _STORAGE[folder]
        store.max_bytes = settings.result_store_bytes
        return journal, store
