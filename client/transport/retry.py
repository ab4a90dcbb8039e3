"""How long to wait before repeating a call that is safe to repeat.

Only free, idempotent calls (status, result, cancel, model info, file
downloads) and submits that provably never reached the server (or were turned
away unbilled with HTTP 429) are repeated. Who repeats what, and for how long,
is decided elsewhere: ``journey.py`` repeats a job's free calls until its
deadline or Stop, ``jobs.py`` re-sends such a submit up to ``attempts`` times,
``model_info.py`` asks twice. This module only says how long to wait.
"""

from __future__ import annotations

import email.utils
import math
import random
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with "equal jitter": each wait is half fixed and half
    random, so retries of many jobs spread out but never come back too soon.

    ``attempts`` bounds the calls of one streak of failures (the first try
    included) where the caller has no deadline of its own to go by.
    ``max_retry_after`` caps a server's ``Retry-After``: a larger wish is read
    as "later", not as "in a week".
    """

    attempts: int = 5
    base_delay: float = 0.25
    max_delay: float = 8.0
    max_retry_after: float = 30.0

    def backoff(self, retry_number: int) -> float:
        """Delay before retry ``retry_number`` (1-based)."""
        ceiling = min(self.max_delay, self.base_delay * (2 ** (retry_number - 1)))
        return random.uniform(ceiling / 2, ceiling)

    def delay(self, retry_number: int, retry_after: float | None = None) -> float:
        """The server's ``Retry-After`` when it gave a usable one, within
        [our own backoff, ``max_retry_after``]; our backoff otherwise."""
        backoff = self.backoff(retry_number)
        if retry_after is None:
            return backoff
        return min(max(retry_after, backoff), self.max_retry_after)

    def exhausted(self, calls: int) -> bool:
        """Whether a streak of ``calls`` failed calls has used up the attempts."""
        return calls >= self.attempts


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (seconds or an HTTP date).

    Negative, non-finite and unreadable values mean "no usable wish" (None);
    how long a usable one may make us wait is ``RetryPolicy``'s business.
    """
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None or when.tzinfo is None:
            return None
        seconds = when.timestamp() - time.time()
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return seconds
