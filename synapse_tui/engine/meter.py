"""Throughput and ETA: smoothed over a time window, honest when there are few samples."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

# The ETA range is read from the rates of this many recent seconds.
RANGE_SECONDS = 30.0
# ...between these percentiles of them (the extremes are ramp-ups and bursts, not the trend).
RANGE_PERCENTILES = (0.2, 0.8)
# A range never reaches further than this factor from the point estimate.
RANGE_FACTOR = 3.0


class Meter:
    """Bytes over time. `rate()` averages the last `window` seconds; `eta()` does not jump.

    The rate is the slope over a sliding window of (time, total) samples, not an average
    of instant rates, so bursts (a chunk acknowledged at once) do not swing it. The time
    base is the first sample of the current activity: the time before it (the meter made
    before a resume re-hashed its prefix, an idle dashboard before the next upload) is not
    counted, nor are the first sample's bytes, whose start is unknown. A burst shorter
    than `min_elapsed` reads as the slope over its own samples, so a 54 MiB upload done in
    half a second reads about 100 MiB/s, not 54 MiB over the whole window. The ETA is
    smoothed with an exponential filter and is None until a rate is known and while stalled.
    """

    def __init__(
        self,
        window: float = 20.0,
        min_elapsed: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        stall_after: float = 5.0,
    ) -> None:
        self.window = window
        self.min_elapsed = min_elapsed
        self.stall_after = stall_after
        self.clock = clock
        self.total = 0
        self.peak = 0.0
        self._samples: deque[tuple[float, int]] = deque()
        self._started = clock()
        self._active_time = 0.0  # seconds between samples of the same activity
        self._active_bytes = 0  # bytes added over those seconds
        self._eta: float | None = None
        self._eta_at = 0.0
        self._history: deque[tuple[float, float]] = deque(maxlen=600)

    def add(self, n: int) -> None:
        now = self.clock()
        if self._samples and now - self._samples[-1][0] > self._stall_limit():
            # After a stall or an idle spell: a new activity with a new time base.
            self._samples.clear()
            self._eta = None
        elif self._samples:
            self._active_time += now - self._samples[-1][0]
            self._active_bytes += n
        self.total += n
        self._samples.append((now, self.total))
        self._trim(now)

    def _trim(self, now: float) -> None:
        while len(self._samples) > 2 and now - self._samples[1][0] > self.window:
            self._samples.popleft()

    def _stall_limit(self) -> float:
        """Seconds without a sample that mean nothing moves: longer than the usual gap."""
        samples = self._samples
        if len(samples) < 2:
            return self.window  # one sample: no usual gap known yet
        gap = (samples[-1][0] - samples[0][0]) / (len(samples) - 1)
        return max(self.stall_after, 3 * gap)

    def stalled(self) -> bool:
        """True when bytes moved in this activity and none for longer than usual since."""
        if not self._samples:
            return False
        return self.clock() - self._samples[-1][0] > self._stall_limit()

    def rate(self) -> float:
        now = self.clock()
        self._trim(now)
        if len(self._samples) < 2 or self.stalled():
            return 0.0  # one sample: when its bytes started is unknown
        t0, b0 = self._samples[0]
        t1, b1 = self._samples[-1]
        elapsed = now - t0
        if elapsed < self.min_elapsed:
            elapsed = t1 - t0  # a short burst: the slope over its own samples
            if elapsed <= 0:
                return 0.0
        rate = (b1 - b0) / elapsed
        self.peak = max(self.peak, rate)
        return rate

    def average(self) -> float:
        """Bytes per second over the time bytes were moving (idle gaps left out)."""
        return self._active_bytes / self._active_time if self._active_time > 0 else 0.0

    def sample(self) -> float:
        """Record the current rate in the history (for sparklines) and return it."""
        rate = self.rate()
        self._history.append((self.clock(), rate))
        return rate

    def history(self, seconds: float) -> list[float]:
        cutoff = self.clock() - seconds
        return [r for t, r in self._history if t >= cutoff]

    def eta(self, remaining: int) -> float | None:
        """Seconds to send `remaining` bytes; None while the rate is unknown or stalled."""
        rate = self.rate()
        if remaining <= 0:
            return 0.0
        if rate <= 0:
            self._eta = None  # a fresh estimate once bytes move again, not a stale countdown
            return None
        raw = remaining / rate
        now = self.clock()
        if self._eta is None:
            self._eta = raw
        else:
            # Count the old estimate down by the time passed, then blend in the new one.
            dt = now - self._eta_at
            projected = max(0.0, self._eta - dt)
            alpha = min(1.0, dt / 10.0)
            self._eta = projected + alpha * (raw - projected)
        self._eta_at = now
        return self._eta

    def eta_range(self, remaining: int) -> tuple[float | None, float | None]:
        """(optimistic, pessimistic) ETA from the spread of the recent rates.

        The 20th and 80th percentiles of the last RANGE_SECONDS of sampled rates, not the
        extremes: a ramp-up sample is no forecast. The range narrows as the rate steadies
        and stays within RANGE_FACTOR of the point estimate; (None, None) while stalled.
        """
        if remaining <= 0:
            return 0.0, 0.0
        rate = self.rate()
        if rate <= 0:
            return None, None
        point = self._eta if self._eta is not None else remaining / rate
        rates = sorted(r for r in self.history(RANGE_SECONDS) if r > 0)
        if len(rates) < 4:
            return point, point
        low_q, high_q = RANGE_PERCENTILES
        slow = rates[int(low_q * (len(rates) - 1))]
        fast = rates[round(high_q * (len(rates) - 1))]
        low = max(remaining / fast, point / RANGE_FACTOR)
        high = min(remaining / slow, point * RANGE_FACTOR)
        return min(low, point), max(high, point)
