"""The user's wish to stop, as every waiting piece of a job sees it.

A ``Stop`` is set directly (the command line's Ctrl-C, a test) or read live
from a check function (ComfyUI's interrupt flag, which nothing can await).
It is read again at every decision that could spend money, so a Stop pressed
a moment before a submit is never a tenth of a second too late.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Awaitable, Callable, TypeVar

log = logging.getLogger("runcomfy")
T = TypeVar("T")


class StopRequested(Exception):
    """Raised by ``Stop.race`` when the user stopped before the awaited work ended."""


class Stop:
    """Set once, never cleared. Waits look again every ``CHECK_INTERVAL`` seconds,
    so a Stop is seen within that time wherever the job is waiting."""

    CHECK_INTERVAL = 0.1

    def __init__(self, check: Callable[[], bool] | None = None) -> None:
        self._check = check
        self._set = False
        self._check_failed = False

    def set(self) -> None:
        self._set = True

    def is_set(self) -> bool:
        """Whether Stop was requested, reading the live check now."""
        if not self._set and self._check is not None:
            try:
                self._set = bool(self._check())
            except Exception:  # a broken check must not decide a paid job's fate
                if not self._check_failed:
                    self._check_failed = True
                    log.exception("Reading the Stop flag failed; carrying on")
        return self._set

    async def sleep(self, seconds: float) -> bool:
        """Wait up to ``seconds``; return True (early) once Stop is requested."""
        deadline = time.monotonic() + max(0.0, seconds)
        while not self.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            await asyncio.sleep(min(remaining, self.CHECK_INTERVAL))
        return True

    async def race(self, work: Awaitable[T]) -> T:
        """Await ``work``; if Stop comes first, cancel it and raise ``StopRequested``."""
        task = asyncio.ensure_future(work)
        try:
            while not task.done():
                if self.is_set():
                    raise StopRequested()
                await asyncio.wait({task}, timeout=self.CHECK_INTERVAL)
            return task.result()
        finally:
            if not task.done():
                task.cancel()
