"""What RunComfy reported as spent since this process (ComfyUI) started.

Each finished job is recorded once by its request id, so a result seen twice
(a retry, a cached re-run, a second look from the editor) never counts twice.
Money is kept in integer micro-dollars, so many small costs add up exactly.
Shared by the nodes (which record) and the editor's settings panel (which
shows the total); ComfyUI runs them on different threads, hence the lock.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

__all__ = ["SessionSpend", "SpendSummary", "record", "summary", "total"]

MICROS_PER_USD = 1_000_000


@dataclass(frozen=True)
class SpendSummary:
    """Totals for display: ``jobs_without_cost`` finished without a reported cost."""

    total_usd: float
    jobs: int
    jobs_without_cost: int


class SessionSpend:
    """Costs per request id, first report wins (a later report only fills a missing cost)."""

    def __init__(self) -> None:
        self._micros: dict[str, int | None] = {}
        self._lock = threading.Lock()

    def record(self, request_id: str, cost_usd: float | None) -> bool:
        """Count one finished job; False when this request id was already counted with a cost."""
        micros = None if cost_usd is None else int(round(float(cost_usd) * MICROS_PER_USD))
        with self._lock:
            if request_id in self._micros and (self._micros[request_id] is not None or micros is None):
                return False
            self._micros[request_id] = micros
            return True

    def summary(self) -> SpendSummary:
        with self._lock:
            costs = list(self._micros.values())
        known = [micros for micros in costs if micros is not None]
        return SpendSummary(
            total_usd=round(sum(known) / MICROS_PER_USD, 6),
            jobs=len(costs),
            jobs_without_cost=len(costs) - len(known),
        )


_SESSION = SessionSpend()


def record(request_id: str, cost_usd: float | None) -> bool:
    """Count a finished job in this session's spend (idempotent per request id)."""
    return _SESSION.record(request_id, cost_usd)


def summary() -> SpendSummary:
    """This session's spend so far."""
    return _SESSION.summary()


def total() -> float:
    """This session's reported spend in USD."""
    return _SESSION.summary().total_usd
