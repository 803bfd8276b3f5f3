"""Shared limits: a bandwidth token bucket and a concurrency gate, both changeable live."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable


class Bandwidth:
    """A token bucket shared by every upload; `rate` None means unlimited.

    Waiters sleep for exactly the deficit, so a low limit does not busy-loop, and a new
    rate takes effect at the next piece (a piece is at most a MiB).
    """

    def __init__(
        self, rate: float | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate = rate
        self._clock = clock
        self._tokens = self._burst()
        self._stamp = clock()
        self._changed = asyncio.Event()

    @property
    def rate(self) -> float | None:
        return self._rate

    def set_rate(self, rate: float | None) -> None:
        self._rate = rate if rate and rate > 0 else None
        self._tokens = self._burst()
        self._stamp = self._clock()
        self._changed.set()
        self._changed = asyncio.Event()

    def _burst(self) -> float:
        return self._rate / 4 if self._rate else 0.0  # at most a quarter second of credit

    def delay_for(self, n: int) -> float:
        """Take `n` bytes of budget; return how long to wait before sending them."""
        rate = self._rate
        if rate is None:
            return 0.0
        now = self._clock()
        self._tokens = min(self._burst(), self._tokens + (now - self._stamp) * rate)
        self._stamp = now
        self._tokens -= n
        return 0.0 if self._tokens >= 0 else -self._tokens / rate

    async def acquire(self, n: int) -> float:
        """Wait until `n` bytes may be sent; returns the seconds waited."""
        delay = self.delay_for(n)
        if delay <= 0:
            return 0.0
        changed = self._changed
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), timeout=delay)
        return delay


class Gate:
    """A semaphore whose capacity can change while tasks hold it (the scheduler polls
    `free()`/`take()` when woken; nothing waits on the gate itself)."""

    def __init__(self, capacity: int, unit: int = 1) -> None:
        # `capacity` slots of `unit` weight each: a task takes a weight of 1..unit (a small
        # file 1, a large one a whole slot: see EngineOptions.small_boost).
        self._unit = max(1, unit)
        self._capacity = max(1, capacity)
        self._held = 0

    @property
    def capacity(self) -> int:
        """In slots (what the user sets as concurrency)."""
        return self._capacity

    @property
    def held(self) -> int:
        return self._held

    def free(self, weight: int = 1) -> bool:
        return self._held + weight <= self._capacity * self._unit

    async def set_capacity(self, capacity: int) -> None:
        self._capacity = max(1, capacity)

    def take(self, weight: int = 1) -> bool:
        if self.free(weight):
            self._held += weight
            return True
        return False

    async def release(self, weight: int = 1) -> None:
        self._held = max(0, self._held - weight)


class Backoff:
    """Capped exponential backoff with full jitter, plus a shared not-before time.

    When any request is told to wait (429 with Retry-After), every worker waits: the
    `not_before` instant is shared, so a rate-limit storm is met by backing off together.
    """

    def __init__(
        self,
        base: float = 1.0,
        cap: float = 60.0,
        rand: Callable[[float, float], float] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        import random

        self.base = base
        self.cap = cap
        self._rand = rand or random.uniform
        self._clock = clock
        self.not_before = 0.0

    def now(self) -> float:
        return self._clock()

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        ceiling = min(self.cap, self.base * (2 ** max(0, attempt - 1)))
        delay = self._rand(0.0, ceiling)
        if retry_after is not None:
            delay = max(delay, retry_after)
            self.not_before = max(self.not_before, self._clock() + retry_after)
        return delay

    def shared_wait(self) -> float:
        return max(0.0, self.not_before - self._clock())
