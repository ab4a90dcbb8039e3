"""What a batch will cost, known before anything is paid.

Each valid line is looked up in the journal: a stored result is reused (free),
a job of the same inputs already paid for is followed (free), everything else
will be submitted and paid. The estimate of a paid job is the one the daily
spend limit counts (``Jobs.estimated_price``, the one call site here), so the
number shown before paying is the same the limit and the badge use.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from ..job.jobs import Jobs
from ..ledger.journal import Action
from .jobfile import BatchLine

__all__ = ["BatchPlan", "plan_batch"]

FREE = (Action.REUSE, Action.RESUME)


@dataclass(frozen=True)
class BatchPlan:
    """Per line: what the journal says (reuse, resume or submit) and its estimated price."""

    lines: list[BatchLine]
    outlook: dict[int, Action]  # by line number
    prices: dict[int, float | None]  # by line number; paid lines only

    @property
    def reused(self) -> int:
        return sum(1 for action in self.outlook.values() if action is Action.REUSE)

    @property
    def followed(self) -> int:
        return sum(1 for action in self.outlook.values() if action is Action.RESUME)

    @property
    def to_pay(self) -> int:
        return len(self.lines) - self.reused - self.followed

    @property
    def unknown_prices(self) -> int:
        return sum(1 for price in self.prices.values() if price is None)

    @property
    def estimate(self) -> float:
        """The total of the known estimates (see ``unknown_prices`` for the rest)."""
        return round(sum(price for price in self.prices.values() if price is not None), 6)

    def will_pay(self, line: BatchLine) -> bool:
        return self.outlook[line.number] not in FREE

    def describe(self) -> str:
        """The price-first line shown before asking."""
        total = f"${self.estimate:.2f}"
        if self.unknown_prices == self.to_pay and self.to_pay:
            total = "unknown"
        elif self.unknown_prices:
            total += f" + {self.unknown_prices} job(s) of unknown price"
        return (f"{len(self.lines)} job(s): {self.reused} already done (reused, free), {self.followed} already "
                f"paid and still to collect (free), {self.to_pay} to pay; estimated total {total}")


async def plan_batch(jobs: Jobs, lines: list[BatchLine], *, reuse: bool = True) -> BatchPlan:
    """Look every line up in the journal and price the ones that will be paid; sends nothing billed."""
    outlook: dict[int, Action] = {}
    paid_once: set[str] = set()  # a second line of the same inputs follows the first one's job
    for line in lines:
        fingerprint = line.request.fingerprint
        if jobs.journal is None or not reuse:
            outlook[line.number] = Action.SUBMIT
            continue
        is_stored = jobs.store.has if jobs.store is not None else None
        action = await asyncio.to_thread(jobs.journal.outlook, fingerprint, jobs.account, is_stored=is_stored)
        outlook[line.number] = Action.RESUME if action not in FREE and fingerprint in paid_once else action
        paid_once.add(fingerprint)
    prices = {line.number: await jobs.estimated_price(line.request) for line in lines
              if outlook[line.number] not in FREE}
    return BatchPlan(lines, outlook, prices)
