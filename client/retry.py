"""How long to wait before repeating a call that is safe to repeat.

Only free, idempotent calls (status, result, cancel, model info) and submits
that provably never reached the server go through here; see ``api.py``.
"""

from __future__ import annotations

import email.utils
import random
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential backoff with full jitter.

    ``attempts`` counts the first try. ``max_retry_after`` caps how long a
    server's ``Retry-After`` may make us sleep inside one call; past that we
    give up and let the caller report the rate limit.
    """

    attempts: int = 5
    base_delay: float = 0.25
    max_delay: float = 8.0
    max_retry_after: float = 60.0

    def backoff(self, retry_number: int) -> float:
        """Delay before retry ``retry_number`` (1-based), jittered to avoid herds."""
        ceiling = min(self.max_delay, self.base_delay * (2 ** (retry_number - 1)))
        return random.uniform(ceiling / 2, ceiling)

    def delay(self, retry_number: int, retry_after: float | None) -> float:
        """The server's ``Retry-After`` wins when it gave one."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        return self.backoff(retry_number)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header, given as seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())
