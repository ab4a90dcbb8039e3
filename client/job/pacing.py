"""When to look at a job next: paced polling that learns how long jobs run.

Polls are paced by a token bucket (on average at most ``rate`` calls a second
per job, short bursts allowed) and shaped by what we know: quick at first,
slower while the job is queued, and, once we have seen how long jobs of the
same kind run, sparse early and dense around the moment this one should end.
That keeps the delay between "done on the server" and "result in hand" small
without hammering the API. Pure arithmetic on a clock: no I/O here.
"""

from __future__ import annotations

import math
import time
from statistics import NormalDist
from typing import Callable, Hashable

from ..transport.responses import Phase


class RunDurations:
    """Remembers how long jobs of one kind ran, and how much that varies, to know
    when to look closely. Both are moving averages, so the picture follows the
    service as it speeds up or slows down."""

    def __init__(self, weight: float = 0.4) -> None:
        self._weight = weight
        self._seconds: dict[Hashable, float] = {}
        self._spread: dict[Hashable, float] = {}

    def expected(self, kind: Hashable) -> float | None:
        return self._seconds.get(kind)

    def spread(self, kind: Hashable) -> float | None:
        """Typical distance of one run from the expected duration (None until two were seen)."""
        return self._spread.get(kind)

    def observe(self, kind: Hashable, seconds: float) -> None:
        if seconds <= 0:
            return
        previous = self._seconds.get(kind)
        if previous is None:
            self._seconds[kind] = seconds
            return
        deviation = abs(seconds - previous)
        spread = self._spread.get(kind)
        self._spread[kind] = deviation if spread is None else spread + self._weight * (deviation - spread)
        self._seconds[kind] = previous + self._weight * (seconds - previous)


class PollPacer:
    """When to poll next, within a per-job rate budget.

    Unknown jobs are polled every ``UNLEARNED_INTERVAL`` once running, a
    little under the rate budget so that the queue polls and the final
    /result still leave a whole job near ``rate`` calls a second. Once the
    duration of this kind of job is known, its end is modelled as a normal
    distribution (the learned duration and spread, widened by how uncertain
    the start is) and each poll is placed where it has a fixed chance,
    ``HAZARD``, of being the first to see the job done: far apart while the
    end is unlikely, close together where it is likely. A job that outlives
    its model goes back to the unlearned cadence.

    Dense polls are paid for with what the sparse ones saved: one is made only
    while the job's own average, counting the /result still to come, stays
    within ``rate`` calls a second since the pacer was created (at submit).
    The token bucket caps every schedule, and ``MIN_GAP`` any burst.
    """

    UNLEARNED_INTERVAL = 0.6
    HAZARD = 0.12  # chance that the next poll is the one that finds the job done
    MIN_GAP = 0.17  # at most 6 polls in any second
    SPARSE_INTERVAL = 2.0  # longest gap while a learned job is far from its end
    DEFAULT_SPREAD = 0.1  # σ of the end as a fraction of the duration, until a spread is learned
    MIN_SPREAD = 0.03  # never trust a learned spread narrower than this fraction
    MEASUREMENT_NOISE = 0.05  # seconds
    TAIL_SIGMAS = 2.0  # past this, the model has failed for this job
    UNLIKELY = 0.01  # below this chance that the job has ended, gaps may reach SPARSE_INTERVAL

    def __init__(
        self,
        *,
        expected_run: float | None = None,
        spread: float | None = None,
        rate: float = 2.0,
        burst: float = 8.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.expected_run = expected_run
        self.spread = spread
        self._clock = clock
        self._tokens = 2.0
        self._created_at = self._refilled_at = clock()
        self.polls = 0
        self._queued_polls = 0
        self.running_since: float | None = None
        self.start_uncertainty = 0.0

    def spend(self) -> None:
        """Account for one poll made now."""
        self._refill()
        self._tokens -= 1.0
        self.polls += 1

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._refilled_at) * self.rate)
        self._refilled_at = now

    def next_delay(self, phase: Phase) -> float:
        """Seconds to wait before the next poll."""
        desired = self._desired(phase)
        self._refill()
        shortfall = 1.0 - (self._tokens + desired * self.rate)
        return desired + max(0.0, shortfall / self.rate)

    def expected_end(self) -> NormalDist | None:
        """When this job should end (on ``clock``), once its kind has been seen before."""
        if not self.expected_run or self.running_since is None:
            return None
        if self.spread is None:
            sigma = self.DEFAULT_SPREAD * self.expected_run
        else:  # a mean absolute deviation is ~0.8 σ
            sigma = max(1.25 * self.spread, self.MIN_SPREAD * self.expected_run)
        sigma = math.sqrt(sigma**2 + self.start_uncertainty**2 / 12 + self.MEASUREMENT_NOISE**2)
        return NormalDist(self.running_since + self.expected_run, sigma)

    def _desired(self, phase: Phase) -> float:
        if phase is Phase.QUEUED:
            self._queued_polls += 1
            return min(1.0, 0.25 * 1.6 ** (self._queued_polls - 1))
        if phase is not Phase.RUNNING:
            return 0.5
        end = self.expected_end()
        now = self._clock()
        if end is None or now > end.mean + self.TAIL_SIGMAS * end.stdev:
            return self.UNLEARNED_INTERVAL
        done = end.cdf(now)
        gap = end.inv_cdf(done + self.HAZARD * (1.0 - done)) - now
        # Sparse only while the end is unlikely; where it is likely, never slower than unlearned.
        longest = self.SPARSE_INTERVAL if done < self.UNLIKELY else self.UNLEARNED_INTERVAL
        gap = max(self.MIN_GAP, min(longest, gap))
        if gap < self.UNLEARNED_INTERVAL:  # a dense poll: only with what earlier polls saved
            affordable_at = self._created_at + (self.polls + 2) / self.rate  # this poll and the /result
            gap = min(self.UNLEARNED_INTERVAL, max(gap, affordable_at - now))
        return gap
