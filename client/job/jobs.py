"""One paid generation from start to finish: the one home of job orchestration.

``Jobs`` runs jobs for one account on one event loop. Beyond the HTTP calls of
``RunComfyClient`` it owns the decisions that spend money: the pre-submit gate
(inputs checked once, the daily spend limit, Stop read right before each
POST), the journal (reuse a stored result, resume a job already paid for, or
submit), the per-account job slots and what was learned about run durations.
Following a submitted job to its end is ``journey.Journey``'s. Both the
ComfyUI nodes and the command line call ``Jobs.run``, so the rules that
protect the user's money live here and nowhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import weakref
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Awaitable, Callable, Generic, Hashable, Mapping, TypeVar

from ..ledger import spend
from ..transport.api import RunComfyClient
from ..config.settings import Settings
from ..account.cache import shared_account_cache
from ..errors import (
    ConfigurationError,
    InsufficientBalanceError,
    JobCancelledError,
    NotFoundError,
    RateLimitedError,
    ResultError,
    RunComfyError,
    SpendLimitError,
    SubmitNotSentError,
    SubmitOutcomeUnknownError,
)
from ..ledger.fingerprint import account_fingerprint
from ..ledger.journal import POLL_SECONDS as CLAIM_POLL_SECONDS
from ..ledger.journal import Action, Claim, Entry, Journal
from ..ledger.journal import JobState as JournalState
from .journey import Journey, collect_hint, despite_cancellation
from ..limits import JOB_DEADLINE_SECONDS
from .pacing import RunDurations
from ..pricing.estimate import Billed, Estimate, estimate_job
from ..model.request import JobRequest
from ..transport.responses import JobResult, check_request_id
from ..ledger.result_store import ResultStore
from ..transport.retry import RetryPolicy
from ..model.schemas import get_schema
from .stop import Stop, StopRequested
from ..config.paths import JOURNAL_FILE_NAME, RESULTS_DIR_NAME, default_data_dir
from .updates import JobUpdate, Stage, UpdateCallback, best_effort

__all__ = ["FinishedJob", "Jobs", "NOTHING_SENT", "collect_hint", "shared_jobs", "shared_storage"]

log = logging.getLogger("runcomfy")
T = TypeVar("T")
NOTHING_SENT = "Stopped before anything was submitted; nothing was billed"


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
        report = best_effort(on_update)
        stop = stop if stop is not None else Stop()
        process = process if process is not None else _identity
        expired: set[str] = set()
        while True:
            claim = await self._claim(request, reuse, stop)
            if claim is not None and claim.request_id in expired:  # the journal could not record it
                claim = None
            if claim is not None and claim.action is Action.REUSE:
                reused = await self._reuse(claim.entry, report, process)
                if reused is not None:
                    return reused
            if claim is not None and claim.action in (Action.REUSE, Action.RESUME):
                report(JobUpdate(Stage.RESUMING, claim.request_id))
                try:
                    return await self._collect(
                        claim.request_id, request.kind, report, stop, timeout, process, fresh=False
                    )
                except NotFoundError as error:
                    if error.status_code != 404:
                        raise
                    expired.add(claim.request_id)
                    continue  # expired or unknown on RunComfy: recorded as expired, so this decides anew
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
        report = best_effort(on_update)
        process = process if process is not None else _identity
        entry = await self._journal_call("get", request_id)
        reused = await self._stored_files(entry, report, process)
        if reused is not None:
            return reused
        report(JobUpdate(Stage.RESUMING, request_id))
        kind = (entry.model_id, None, None) if entry is not None else (None, None, None)
        adopted = entry is None and bool(await self._journal_call("adopt", request_id, self.account))
        try:
            return await self._collect(request_id, kind, report, stop or Stop(), timeout, process, fresh=False)
        except BaseException:
            if adopted:
                await self._journal_call("forget", request_id)
            raise

    async def stored(
        self,
        model_id: str,
        inputs: Mapping[str, Any],
        *,
        on_update: UpdateCallback | None = None,
        process: Callable[[bytes], Awaitable[T]] | None = None,
    ) -> FinishedJob[T] | None:
        """The stored result of these inputs from the journal and result store, or None;
        no call to RunComfy and nothing claimed (what an offline ComfyUI may still do)."""
        request = JobRequest.checked(model_id, inputs, local_api=self.client.local)
        if self.journal is None or self.store is None:
            return None
        entry = await asyncio.to_thread(
            self.journal.stored_result, request.fingerprint, self.account, is_stored=self.store.has
        )
        return await self._stored_files(entry, best_effort(on_update), process or _identity)

    async def collect_stored(
        self,
        request_id: str,
        *,
        on_update: UpdateCallback | None = None,
        process: Callable[[bytes], Awaitable[T]] | None = None,
    ) -> FinishedJob[T] | None:
        """The stored files of request ``request_id`` of this account, or None; no call to RunComfy."""
        entry = await self._journal_call("get", check_request_id(request_id))
        return await self._stored_files(entry, best_effort(on_update), process or _identity)

    async def _stored_files(
        self, entry: Entry | None, report: UpdateCallback, process: Callable[[bytes], Awaitable[T]]
    ) -> FinishedJob[T] | None:
        """``_reuse`` of a journal entry of this account; None for no entry or another account's."""
        if entry is None or entry.account != self.account:
            return None
        return await self._reuse(entry, report, process)

    async def _submit_and_collect(
        self, request: JobRequest, claim: Claim | None, report: UpdateCallback, stop: Stop, timeout: float,
        process: Callable[[bytes], Awaitable[T]],
    ) -> FinishedJob[T]:
        try:
            if claim is None or claim.entry is None:  # no journal: the limit was not checked by ``_claim``
                await self._check_spend_limit(request)
            await self._check_balance(request)
        except InsufficientBalanceError:
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
            journey = self._journey(request_id, request.kind, report, stop, timeout, fresh=True)
            result = await self._recorded(journey, journey.result(), submitted_here=True)
        finally:
            self._slots.release()
        return await self._finish(journey, result, process)

    async def _collect(
        self, request_id: str, kind: Hashable, report: UpdateCallback, stop: Stop, timeout: float,
        process: Callable[[bytes], Awaitable[T]], *, fresh: bool,
    ) -> FinishedJob[T]:
        """Follow a job that already exists and download its files (no slot: nothing new runs)."""
        journey = self._journey(request_id, kind, report, stop, timeout, fresh=fresh)
        result = await self._recorded(journey, journey.result())
        return await self._finish(journey, result, process)

    def _journey(
        self, request_id: str, kind: Hashable, report: UpdateCallback, stop: Stop, timeout: float, *, fresh: bool
    ) -> Journey:
        return Journey(
            self.client, request_id, kind=kind, report=report, stop=stop, timeout=timeout, retry=self.retry,
            durations=self.durations, fresh=fresh,
        )

    async def _finish(
        self, journey: Journey, result: JobResult, process: Callable[[bytes], Awaitable[T]]
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
        model_id = (journey.kind[0] if isinstance(journey.kind, tuple) else None) or result.model_id
        return FinishedJob(journey.request_id, model_id, result.status, [file for _, file in pairs], result)

    async def _recorded(
        self, journey: Journey, following: Awaitable[JobResult], *, submitted_here: bool = False
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
            if submitted_here:
                shared_account_cache().forget_balances()  # the next reading shows what was billed

    async def _check_spend_limit(self, request: JobRequest) -> None:
        """Without a journal: refuse when this job's estimate alone passes the daily limit.

        With a journal the limit is checked by ``_claim``, in the same transaction
        that records the job (see ``Journal.claim``).
        """
        limit = self.client.settings.daily_spend_limit_usd
        if limit is None:
            return
        estimate = await self.estimate(request)
        if estimate.usd is None or estimate.usd > limit + 1e-9:
            raise self._over_limit(limit, 0.0, estimate)

    def _over_limit(self, limit: float, spent: float, estimate: Estimate) -> SpendLimitError:
        """The refusal of a job under the daily limit: what was counted, and how to go on."""
        settings = self.client.settings
        where = (f'raise or remove it in Settings > RunComfy or as "daily_spend_limit_usd" in '
                 f'{settings.config_path or "your RunComfy config file"}')
        if estimate.usd is None:
            why = estimate.reason or "RunComfy states no price for it"
            return SpendLimitError(
                f"Refused before paying: your daily spend limit of ${limit:.2f} is on, but this job's price "
                f"cannot be estimated ({why}), so it cannot be counted; {where}. Once RunComfy has "
                f"reported the cost of one job at {estimate.resolution}, that figure is used"
            )
        return SpendLimitError(
            f"Refused before paying: this job ({estimate.describe()}) would pass your daily spend limit of "
            f"${limit:.2f} (${spent:.2f} spent today, jobs in flight and jobs RunComfy reported no cost for "
            f"counted at their estimate); {where}"
        )

    async def _check_balance(self, request: JobRequest) -> None:
        """Refuse before paying when the balance RunComfy reports is below this job's estimate.

        Either figure unknown (no price, no account base, a failed balance call) means go on:
        an account call that fails never blocks a run.
        """
        if not self.client.settings.account_base_url:
            return
        estimate = await self.estimate(request)
        if estimate.usd is None:
            return
        balance = await shared_account_cache().balance(self.client.settings, client=self.client)
        if balance.known and balance.usd is not None and balance.usd + 1e-9 < estimate.usd:
            raise InsufficientBalanceError(
                f"Refused before paying: your RunComfy balance is {balance.describe()}, below this job's estimate "
                f"({estimate.describe()}); top up your RunComfy account, or ask for fewer images or a lower "
                "resolution. Nothing was submitted"
            )

    async def estimated_price(self, request: JobRequest) -> float | None:
        """The price the daily limit check counts for this job (None: unknown); free to ask."""
        return (await self.estimate(request)).usd

    async def estimate(self, request: JobRequest) -> Estimate:
        """What this job will cost and where that figure comes from (``pricing.estimate``):
        the one estimate of the badge, the daily limit, a batch's total and the balance check.

        Free: the model info is cached a few minutes, the journal is local.
        """
        model_id, resolution, count = request.kind
        info, reason = await self._model_info(model_id)
        billed = await self._journal_call("last_billed", self.account, model_id, resolution)
        resolutions = get_schema(model_id).properties["resolution"]["enum"]
        return estimate_job(info, resolutions, resolution, count, Billed(*billed) if billed else None,
                            unknown_reason=reason)

    async def _model_info(self, model_id: str) -> tuple[Mapping[str, Any] | None, str | None]:
        """RunComfy's model info (cached a few minutes), or None and why it could not be had."""
        key = (self.client.settings.base_url, self.account, model_id)
        expires, answer = _PRICES.get(key, (0.0, (None, None)))
        if time.monotonic() >= expires:
            try:
                answer = (await self.client.model_info(model_id), None)
            except RunComfyError as error:
                log.info("No model info for a price estimate: %s", error)
                answer = (None, f"RunComfy's model info could not be read: {error}")
            _PRICES[key] = (time.monotonic() + PRICE_SECONDS, answer)
        return answer

    async def _claim(self, request: JobRequest, reuse: bool, stop: Stop) -> Claim | None:
        """Ask the journal whether to reuse, resume or submit (None: no journal)."""
        if self.journal is None:
            return None
        prompt = str(request.inputs.get("prompt", ""))
        is_stored = self.store.has if self.store is not None else None
        _, resolution, count = request.kind
        limit = self.client.settings.daily_spend_limit_usd
        # Under a limit the job counts at its estimate from the moment it is recorded.
        estimate = await self.estimate(request) if limit is not None else None
        while True:
            claim = await asyncio.to_thread(
                self.journal.claim, request.fingerprint, self.account, model_id=request.model_id, prompt=prompt,
                is_stored=is_stored, reuse=reuse, wait=0, resolution=resolution, num_images=count,
                estimate=estimate.usd if estimate is not None else None, daily_limit=limit,
            )
            if claim.action is Action.OVER_LIMIT:
                assert estimate is not None and limit is not None
                raise self._over_limit(limit, claim.spent_today or 0.0, estimate)
            # BUSY: another live run of the same inputs is submitting; wait for its request id
            # (the journal gives up its placeholder at the lease's end, so this ends).
            if claim.action is not Action.BUSY:
                return claim
            if await stop.sleep(CLAIM_POLL_SECONDS):
                raise JobCancelledError(NOTHING_SENT)

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
        report(JobUpdate(Stage.REUSED, entry.request_id, detail=when))
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
        """A journal operation on a worker thread; nothing without a journal, or for no claim."""
        if self.journal is None or (args and args[0] is None):
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
                return await _submitdespite_cancellation(self.client, request)
            except (SubmitNotSentError, RateLimitedError) as error:
                failures += 1
                if self.retry.exhausted(failures):
                    raise
                wait = self.retry.delay(failures, getattr(error, "retry_after", None))
                log.info("The submit was not accepted (%s); sending it again in %.1f s (not billed)", error, wait)
                if await stop.sleep(wait):
                    raise StopRequested() from None


async def _identity(data: bytes) -> Any:
    return data


async def _submitdespite_cancellation(client: RunComfyClient, request: JobRequest) -> str:
    """Submit; if our task is cancelled meanwhile, still learn the id and cancel the job.

    Abandoning a submit half-way would leave a billed job nobody can find.
    """
    task = asyncio.ensure_future(client.submit(request.model_id, request.body))
    try:
        return await despite_cancellation(task)
    except asyncio.CancelledError:
        if task.done() and not task.cancelled() and task.exception() is None:
            with contextlib.suppress(Exception):
                await despite_cancellation(asyncio.wait_for(client.cancel(task.result()), 10.0))
        raise


# One Jobs per (event loop, account): an httpx.AsyncClient's pooled connections
# belong to the loop that opened them, and ComfyUI runs every prompt on a new
# loop. What was learned about run durations is plain data, so it outlives the
# loops: one record per account.
_PER_LOOP: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple, Jobs]]" = weakref.WeakKeyDictionary()
_DURATIONS: dict[tuple[str, str], RunDurations] = {}
_STORAGE: dict[Path, tuple[Journal, ResultStore]] = {}
_PRICES: dict[tuple[str, str, str], tuple[float, tuple[Mapping[str, Any] | None, str | None]]] = {}
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
    key = (settings.base_url, settings.account_fingerprint(), settings.download_hosts, id(journal),
           settings.proxy, settings.proxy_environment)  # a changed proxy needs a new client
    jobs = per_loop.get(key)
    if jobs is None:
        durations = _DURATIONS.setdefault(key[:2], RunDurations())
        jobs = Jobs(RunComfyClient(settings), durations=durations, journal=journal, store=store)
        per_loop[key] = jobs
    return jobs


def shared_storage(
    settings: Settings, env: Mapping[str, str] | None = None
) -> tuple[Journal | None, ResultStore | None]:
    """The journal and result store in the user's data folder, one of each per process;
    the store's size cap follows ``settings`` (the config file's ``result_store_gib``).

    A data folder that cannot be used (e.g. one inside the pack) means no
    journal, with a warning: generation never stops because of it.
    """
    try:
        folder = default_data_dir() if env is None else default_data_dir(env)
    except ConfigurationError as error:
        log.warning("No job journal or result store: %s", error)
        return None, None
    with _storage_lock:
        if folder not in _STORAGE:
            _STORAGE[folder] = (Journal(folder / JOURNAL_FILE_NAME), ResultStore(folder / RESULTS_DIR_NAME))
        journal, store = _STORAGE[folder]
        store.max_bytes = settings.result_store_bytes
        return journal, store
