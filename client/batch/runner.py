"""Running a planned batch: many jobs at once, each through ``Jobs.run``, none stopping the others.

Every job goes through the one job path (``job.Jobs.run``), so each gets what a
single job gets: the journal (never paid twice, followed after a crash), the
daily spend limit, rate limits and outages ridden out, one way to poll. This
module only decides which lines start and when:

- at most ``concurrency`` lines at once (the account runs 8 jobs at a time);
- after Stop nothing new starts; what is queued is cancelled by ``Jobs``;
- with a budget, a paid line starts only while the reported spend of this run
  plus the estimates of the paid jobs still running plus its own stay within it;
- a refusal that would hit every later job alike (no balance, the daily limit,
  a rejected token) stops further paid submits; free lines (reused, followed) still run.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import (
    AuthenticationError,
    ConfigurationError,
    InsufficientBalanceError,
    JobBlockedError,
    JobCancelledError,
    RunComfyError,
    SpendLimitError,
)
from ..job.jobs import Jobs
from ..job.stop import Stop
from ..job.updates import JobUpdate
from ..limits import JOB_DEADLINE_SECONDS
from .jobfile import BatchLine
from .manifest import Outcome, write_files
from .plan import BatchPlan

__all__ = ["BatchRun", "MAX_CONCURRENCY", "RunEvent"]

MAX_CONCURRENCY = 8  # RunComfy runs up to 8 jobs of one account at once
ACCOUNT_WIDE = (InsufficientBalanceError, SpendLimitError, AuthenticationError, ConfigurationError)


@dataclass(frozen=True)
class RunEvent:
    """One thing that happened: a line ``started``, had a job ``update``, or ``finished``."""

    kind: str
    line: int
    outcome: Outcome | None = None
    update: JobUpdate | None = None


@dataclass
class BatchRun:
    """One run of a planned batch; ``outcomes`` fills in as lines finish."""

    jobs: Jobs
    plan: BatchPlan
    out: Path
    stems: dict[int, str]
    stop: Stop
    concurrency: int = MAX_CONCURRENCY
    max_usd: float | None = None
    timeout: float = JOB_DEADLINE_SECONDS
    reuse: bool = True
    on_event: Callable[[RunEvent], None] = lambda event: None
    outcomes: dict[int, Outcome] = field(default_factory=dict)
    spent: float = 0.0  # reported cost of the jobs this run paid for
    refusal: str | None = None  # why no further paid job may start
    _reserved: float = 0.0

    async def run(self) -> dict[int, Outcome]:
        """Run every line; returns each line's outcome (also when stopped part-way)."""
        self.out.mkdir(parents=True, exist_ok=True)
        slots = asyncio.Semaphore(max(1, min(self.concurrency, MAX_CONCURRENCY)))

        async def in_turn(line: BatchLine) -> None:
            async with slots:
                await self._one(line)

        await asyncio.gather(*(in_turn(line) for line in self.plan.lines))
        return self.outcomes

    async def _one(self, line: BatchLine) -> None:
        outcome = Outcome(line.number, "pending", line.model_id, line.kept, line.source)
        self.outcomes[line.number] = outcome
        pays = self.plan.will_pay(line)
        price = self.plan.prices.get(line.number) or 0.0
        reason = self._why_not_start(pays, price)
        if reason is not None:
            self._end(outcome, "skipped", error=reason)
            return
        if pays:
            self._reserved += price
        self.on_event(RunEvent("started", line.number))
        try:
            job = await self.jobs.run(
                line.model_id, line.request.inputs, stop=self.stop, timeout=self.timeout, reuse=self.reuse,
                on_update=lambda update: self.on_event(RunEvent("update", line.number, update=update)),
            )
        except JobBlockedError as error:
            self._end(outcome, "blocked", error=str(error), request_id=error.request_id)
        except JobCancelledError as error:
            self._end(outcome, _stopped_status(error), error=str(error), request_id=error.request_id)
        except ACCOUNT_WIDE as error:
            self.refusal = self.refusal or f"not submitted: an earlier job was refused ({error})"
            self._end(outcome, "failed", error=str(error), request_id=error.request_id)
        except RunComfyError as error:
            self._end(outcome, "failed", error=str(error), request_id=error.request_id)
        else:
            if job.cost is not None:
                self.spent = round(self.spent + job.cost, 6)
            try:
                files = await asyncio.to_thread(write_files, self.out, self.stems[line.number], job.files)
            except OSError as error:
                self._end(outcome, "failed", error=f"could not write the images to {self.out}: {error.strerror}; "
                          f"run the batch again to collect them (free)", request_id=job.request_id, cost=job.cost)
            else:
                status = "reused" if job.reused_at is not None else "completed"
                self._end(outcome, status, request_id=job.request_id, cost=job.cost, files=files)
        finally:
            if pays:
                self._reserved = max(0.0, self._reserved - price)

    def _why_not_start(self, pays: bool, price: float) -> str | None:
        if self.stop.is_set():
            return "not started: stopped"
        if not pays:
            return None
        if self.refusal is not None:
            return self.refusal
        if self.max_usd is not None and self.spent + self._reserved + price > self.max_usd + 1e-9:
            return f"not submitted: the budget of ${self.max_usd:.2f} (--max-usd) would be passed"
        return None

    def _end(self, outcome: Outcome, status: str, *, error: str | None = None, request_id: str | None = None,
             cost: float | None = None, files: list[str] | None = None) -> None:
        outcome.status, outcome.error, outcome.request_id = status, error, request_id
        outcome.cost_usd, outcome.files = cost, files or []
        self.on_event(RunEvent("finished", outcome.line, outcome=outcome))


def _stopped_status(error: JobCancelledError) -> str:
    """After Stop: never sent, cancelled while queued (not billed), or left running (may be billed)."""
    if error.request_id is None:
        return "not_started"
    if "nothing is billed" in str(error) or "cancelled on RunComfy's side" in str(error):
        return "cancelled"
    return "stopped"
