"""The simulator's record of every request it answered (or dropped).

Tests assert on this log instead of on timing: how many submits were sent
(a lost answer must never be re-submitted), whether a file download carried an
Authorization header (it must not), which fault hit which request. It never
holds a token, a header value (but a proxy's ``Via``) or a query string, so it can be printed or
served to another process without leaking anything.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class LogRecord:
    """One request. ``status`` is None when no answer was sent (a dropped
    connection). ``time`` is seconds since the simulator started. ``peer`` is
    the address the request came from and ``via`` the ``Via`` header a
    forwarding proxy added (not a secret; cut to 80 characters), so a test
    can tell a request that came through a proxy."""

    time: float
    method: str
    path: str
    route: str
    status: int | None
    request_id: str | None = None
    model_id: str | None = None
    auth_header_sent: bool = False
    fault: str | None = None
    account: str | None = None
    note: str | None = None
    peer: str | None = None
    via: str | None = None
    base: str = "model"
    """Which of the simulator's three bases was asked: ``model``, ``www`` or ``api``."""

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class RequestLog:
    """Append-only, thread-safe list of ``LogRecord``s, timed from ``started``
    (the simulator's start, in ``time.monotonic()`` seconds)."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._records: list[LogRecord] = []

    def add(self, **fields: Any) -> None:
        """Record one request, stamped with the time since ``started``."""
        record = LogRecord(time=round(time.monotonic() - self.started, 6), **fields)
        with self._lock:
            self._records.append(record)

    def records(self, **filters: Any) -> list[LogRecord]:
        """Records whose fields equal every given filter, oldest first.

        ``sim.requests(route="submit", status=200)``; unknown filter names are
        an error so a typo cannot make an assertion pass vacuously.
        """
        names = {f.name for f in dataclasses.fields(LogRecord)}
        unknown = set(filters) - names
        if unknown:
            raise TypeError(f"unknown log field(s): {', '.join(sorted(unknown))}")
        with self._lock:
            snapshot = list(self._records)
        return [r for r in snapshot if all(getattr(r, k) == v for k, v in filters.items())]

    def clear(self) -> None:
        with self._lock:
            self._records.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)
