"""What the user sees while a batch runs: a bar on a terminal, plain lines otherwise, JSON for scripts.

The bar (stderr) shows done/failed/running counts, the spend so far and an
ETA from the pace of the jobs finished so far; it is redrawn at most ten times
a second. Plain lines (stderr) say one thing per finished job. ``json`` writes
one event a line on stdout, for scripts: ``plan``, ``job`` and ``summary``.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from typing import Any, TextIO

from .manifest import Outcome
from .runner import RunEvent

__all__ = ["Progress", "FAILED_STATES"]

FAILED_STATES = ("failed", "blocked")
BAR_WIDTH = 24
REDRAW_SECONDS = 0.1


class Progress:
    """Shows a batch's run in one of three ``mode``s: ``bar``, ``plain`` or ``json``."""

    def __init__(self, mode: str, total: int, *, err: TextIO = sys.stderr, out: TextIO = sys.stdout) -> None:
        self.mode, self.total, self.err, self.out = mode, total, err, out
        self.started_at = time.monotonic()
        self.counts: Counter[str] = Counter()
        self.running: set[int] = set()
        self.spent = 0.0
        self._drawn_at = 0.0

    def say(self, text: str) -> None:
        """A message for the person (stderr), kept clear of the bar."""
        self._clear_bar()
        print(text, file=self.err, flush=True)

    def emit(self, event: str, **fields: Any) -> None:
        """One JSON event (``json`` mode only)."""
        if self.mode == "json":
            print(json.dumps({"event": event, **fields}, ensure_ascii=False), file=self.out, flush=True)

    def __call__(self, event: RunEvent) -> None:
        if event.kind == "started":
            self.running.add(event.line)
        elif event.kind == "finished" and event.outcome is not None:
            self.running.discard(event.line)
            self._finished(event.outcome)
        self._draw()

    def _finished(self, outcome: Outcome) -> None:
        self.counts[outcome.status] += 1
        self.spent = round(self.spent + (outcome.cost_usd or 0.0), 6)
        if self.mode == "json":
            self.emit("job", **outcome.row())
        elif self.mode == "plain" or outcome.status not in ("completed", "reused"):
            self.say(describe(outcome))

    def done(self) -> int:
        return sum(self.counts.values())

    def eta_seconds(self) -> float | None:
        finished = self.done()
        if not finished:
            return None
        return (time.monotonic() - self.started_at) / finished * (self.total - finished)

    def finish(self) -> None:
        """The bar's last state, left on its own line."""
        if self.mode == "bar":
            self._draw(force=True)
            print(file=self.err, flush=True)
            self._drawn_at = 0.0

    def _draw(self, *, force: bool = False) -> None:
        if self.mode != "bar":
            return
        now = time.monotonic()
        if not force and now - self._drawn_at < REDRAW_SECONDS and self.done() < self.total:
            return
        self._drawn_at = now
        done = self.done()
        filled = int(BAR_WIDTH * done / self.total) if self.total else BAR_WIDTH
        failed = sum(self.counts[state] for state in FAILED_STATES)
        eta = self.eta_seconds()
        eta_text = f"ETA {_clock(eta)}" if eta is not None and done < self.total else ""
        line = (f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done}/{self.total}  failed {failed}  "
                f"running {len(self.running)}  ${self.spent:.2f}  {eta_text}")
        print("\r" + line.ljust(100)[:100], end="", file=self.err, flush=True)

    def _clear_bar(self) -> None:
        if self.mode == "bar" and self._drawn_at:
            print("\r" + " " * 100 + "\r", end="", file=self.err, flush=True)
            self._drawn_at = 0.0


def describe(outcome: Outcome) -> str:
    """One plain line about a finished job."""
    where = f" -> {', '.join(outcome.files)}" if outcome.files else ""
    cost = f" ${outcome.cost_usd:.3f}" if outcome.cost_usd is not None else ""
    rid = f" [{outcome.request_id}]" if outcome.request_id else ""
    error = f": {outcome.error}" if outcome.error else ""
    return f"line {outcome.line}: {outcome.status}{rid}{cost}{where}{error}"


def _clock(seconds: float) -> str:
    minutes, rest = divmod(int(seconds + 0.5), 60)
    return f"{minutes}m{rest:02d}s" if minutes else f"{rest}s"
