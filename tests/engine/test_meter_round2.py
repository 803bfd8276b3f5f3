"""The meter's numbers a person can trust: resumed jobs, short bursts, ETA ranges, stalls."""

from __future__ import annotations

import random

import pytest

from synapse_tui.engine.meter import RANGE_FACTOR, Meter

MiB = 1 << 20


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def feed(
    meter: Meter, clock: Clock, rate: float, seconds: float, piece: int = MiB, tick: float = 0.25
) -> None:
    """Add `piece`-sized samples at `rate` bytes/s for `seconds`, sampling every `tick` s."""
    end = clock.now + seconds
    next_sample = clock.now + tick
    step = piece / rate
    while clock.now + step <= end + 1e-9:
        clock.now += step
        meter.add(piece)
        while next_sample <= clock.now:
            meter.sample()
            next_sample += tick


def test_resumed_job_eta_ignores_the_time_before_its_first_byte() -> None:
    # A job resumed at 200 of 300 MiB: its meter is made, then 8 s go to re-hashing the
    # prefix already on the server, then it sends at 10 MiB/s.
    clock = Clock()
    meter = Meter(clock=clock)
    clock.now = 8.0
    sent = 200 * MiB
    for _ in range(30):  # 3 s at 10 MiB/s, an ETA asked at every piece as the ticks do
        clock.now += 0.1
        meter.add(MiB)
        sent += MiB
        eta = meter.eta(300 * MiB - sent)
    truth = (300 * MiB - sent) / (10 * MiB)
    assert eta is not None
    assert eta == pytest.approx(truth, rel=0.25)


def test_a_burst_shorter_than_the_window_reads_its_real_rate() -> None:
    clock = Clock()
    meter = Meter(clock=clock)
    clock.now = 30.0  # the dashboard was idle for half a minute
    feed(meter, clock, 100 * MiB, 0.54)  # 54 MiB in about half a second
    clock.now += 0.25
    meter.sample()
    assert meter.peak == pytest.approx(100 * MiB, rel=0.1)


def test_an_idle_gap_restarts_the_time_base() -> None:
    clock = Clock()
    meter = Meter(clock=clock)
    feed(meter, clock, 10 * MiB, 5)
    clock.now += 120  # idle two minutes
    feed(meter, clock, 50 * MiB, 3)
    assert meter.rate() == pytest.approx(50 * MiB, rel=0.1)
    assert 10 * MiB <= meter.average() <= 50 * MiB


def test_eta_range_of_a_steady_rate_is_narrow_despite_the_ramp_up() -> None:
    clock = Clock()
    meter = Meter(clock=clock)
    rng = random.Random(7)
    clock.now = 30.0  # the dashboard was open half a minute before the first upload
    for step in range(1, 7):  # a ramp-up: 2, 4, ... 12 MiB/s, half a second each
        feed(meter, clock, 2 * step * MiB, 0.5, tick=0.5)
    for _ in range(40):  # then a steady 60-80 MiB/s (sampled every 0.5 s, as the engine ticks)
        feed(meter, clock, rng.uniform(60, 80) * MiB, 1.0, tick=0.5)
    remaining = 20 * 1024 * MiB
    point = meter.eta(remaining)
    low, high = meter.eta_range(remaining)
    assert point is not None and low is not None and high is not None
    assert low <= point <= high
    assert high / low < 1.6  # narrow: the rates vary by 4/3
    assert high <= RANGE_FACTOR * point
    assert remaining / (80 * MiB) * 0.9 <= low and high <= remaining / (60 * MiB) * 1.1


def test_eta_range_stays_within_a_few_times_the_point_estimate() -> None:
    clock = Clock()
    meter = Meter(clock=clock)
    for _ in range(20):  # an erratic rate: 1 and 100 MiB/s in turn
        feed(meter, clock, 1 * MiB, 1.0)
        feed(meter, clock, 100 * MiB, 0.5)
    point = meter.eta(10 * 1024 * MiB)
    low, high = meter.eta_range(10 * 1024 * MiB)
    assert point is not None and low is not None and high is not None
    assert point / RANGE_FACTOR <= low <= point <= high <= point * RANGE_FACTOR


def test_an_outage_reads_as_stalled_not_as_a_number() -> None:
    clock = Clock()
    meter = Meter(clock=clock)
    feed(meter, clock, 20 * MiB, 10)
    assert not meter.stalled() and meter.eta(100 * MiB) is not None
    clock.now += 10  # the backend went away: nothing moves
    meter.sample()
    assert meter.stalled()
    assert meter.rate() == 0.0
    assert meter.eta(100 * MiB) is None
    assert meter.eta_range(100 * MiB) == (None, None)
    feed(meter, clock, 20 * MiB, 2)  # back: a fresh estimate
    assert not meter.stalled()
    eta = meter.eta(100 * MiB)
    assert eta is not None and eta == pytest.approx(5.0, rel=0.3)


def test_a_slow_steady_flow_is_not_a_stall() -> None:
    clock = Clock()
    meter = Meter(clock=clock)
    feed(meter, clock, 100 * 1024, 60)  # 100 KiB/s: a 1 MiB piece every ~10 s
    clock.now += 5
    assert not meter.stalled()
    assert meter.rate() > 0
