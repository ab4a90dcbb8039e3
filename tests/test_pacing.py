"""client/job/pacing.py: when to look at a job next, within two calls a second."""

from __future__ import annotations

import pytest

from packloader import pack_import

pacing = pack_import("client.job.pacing")
Phase = pack_import("client.transport.responses").Phase


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _simulate_polls(pacer: pacing.PollPacer, clock: FakeClock, phase, seconds: float) -> list[float]:
    times = []
    end = clock.now + seconds
    while clock.now < end:
        pacer.spend()
        times.append(clock.now)
        clock.now += pacer.next_delay(phase)
    return times


@pytest.mark.parametrize("expected_run", [None, 3.0])
def test_pacer_never_exceeds_about_two_polls_a_second(expected_run):
    clock = FakeClock()
    pacer = pacing.PollPacer(expected_run=expected_run, clock=clock)
    pacer.running_since = clock.now
    times = _simulate_polls(pacer, clock, Phase.RUNNING, 30.0)
    assert len(times) / 30.0 <= 2.0 + 5 / 30  # the rate plus one initial burst
    for start in times:  # no one-second window holds more than the burst allows
        assert sum(start <= t < start + 1.0 for t in times) <= 2 + 5


def test_pacer_polls_densely_when_the_job_should_end():
    clock = FakeClock()
    pacer = pacing.PollPacer(expected_run=5.0, clock=clock)
    pacer.running_since = clock.now
    times = _simulate_polls(pacer, clock, Phase.RUNNING, 6.0)
    early = [t for t in times if t < 103.5]
    near_end = [t for t in times if 104.6 <= t <= 105.4]
    assert len(early) <= 5
    assert len(near_end) >= 4


def test_pacer_backs_off_while_queued():
    clock = FakeClock()
    pacer = pacing.PollPacer(clock=clock)
    delays = [pacer.next_delay(Phase.QUEUED) for _ in range(8)]
    assert delays[0] < 0.5 and delays[-1] == pytest.approx(1.0)
    assert delays == sorted(delays)


def test_durations_learn_their_spread():
    durations = pacing.RunDurations()
    assert durations.expected("k") is None and durations.spread("k") is None
    for seconds in (5.0, 7.0, 5.0, 7.0, 5.0, 7.0):
        durations.observe("k", seconds)
    assert 5.0 < durations.expected("k") < 7.0 and 0.8 < durations.spread("k") < 2.0


@pytest.mark.parametrize("ends_after", [4.3, 5.0, 5.6, 6.2, 8.0])
def test_a_learned_job_stays_within_two_calls_a_second_and_looks_closely_near_its_end(ends_after):
    clock = FakeClock()
    created = clock.now
    pacer = pacing.PollPacer(expected_run=5.0, spread=0.4, clock=clock)
    clock.now += 1.0  # queued for a second, then seen running
    pacer.running_since, pacer.start_uncertainty = clock.now, 0.3
    end = pacer.running_since + ends_after
    polls = []
    while True:
        pacer.spend()
        polls.append(clock.now)
        if clock.now >= end:
            break
        clock.now += pacer.next_delay(Phase.RUNNING)
    assert (len(polls) + 1) / (polls[-1] - created) <= 2.0  # the /result call included
    assert polls[-1] - end <= pacing.PollPacer.UNLEARNED_INTERVAL
    if abs(ends_after - 5.0) <= 0.6:
        assert polls[-1] - end < 0.35  # where the end was likely, polls were close together
