"""Throughput and ETA: smoothed over a time window, honest when there are few samples."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class Meter:
    """Bytes over time. `rate()` averages the last `window` seconds; `eta()` does not jump.

    The rate is the slope over a sliding window of (time, total) samples, not an average
    of instant rates, so bursts (a chunk acknowledged at once) do not swing it. The ETA is
    smoothed with an exponential filter and is None until enough time has passed.
    """

    def __init__(
        self,
        window: float = 20.0,
        min_elapsed: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window = window
        self.min_elapsed = min_elapsed
        self.clock = clock
        self.total = 0
        self.peak = 0.0
        self._samples: deque[tuple[float, int]] = deque()
        self._started = clock()
        self._eta: float | None = None
        self._eta_at = 0.0
        self._history: deque[tuple[float, float]] = deque(maxlen=600)

    def add(self, n: int) -> None:
        self.total += n
        now = self.clock()
        self._samples.append((now, self.total))
        self._trim(now)

    def _trim(self, now: float) -> None:
        while len(self._samples) > 2 and now - self._samples[1][0] > self.window:
            self._samples.popleft()

    def rate(self) -> float:
        now = self.clock()
        self._trim(now)
        if not self._samples:
            return 0.0
        t0, b0 = self._samples[0]
        if len(self._samples) == 1:
            t0, b0 = self._started, 0
        elapsed = now - t0
        if elapsed < self.min_elapsed:
            elapsed = max(now - self._started, 1e-9)
            if elapsed < self.min_elapsed:
                return 0.0
            b0 = 0
        rate = (self.total - b0) / elapsed
        self.peak = max(self.peak, rate)
        return rate

    def average(self) -> float:
        elapsed = self.clock() - self._started
        return self.total / elapsed if elapsed >= self.min_elapsed else 0.0

    def sample(self) -> float:
        """Record the current rate in the history (for sparklines) and return it."""
        rate = self.rate()
        self._history.append((self.clock(), rate))
        return rate

    def history(self, seconds: float) -> list[float]:
        cutoff = self.clock() - seconds
        return [r for t, r in self._history if t >= cutoff]

    def eta(self, remaining: int) -> float | None:
        """Seconds to send `remaining` bytes; None while the rate is unknown."""
        rate = self.rate()
        if remaining <= 0:
            return 0.0
        if rate <= 0:
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
        """(optimistic, pessimistic) ETA from the fastest and slowest recent rates."""
        rates = [r for _, r in self._history if r > 0][-60:]
        if remaining <= 0:
            return 0.0, 0.0
        if not rates:
            eta = self.eta(remaining)
            return eta, eta
        return remaining / max(rates), remaining / min(rates)
