"""A task on the event loop that ticks every few ms: the longest gap between two ticks is
the longest time the loop was blocked (something ran on it without yielding)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from types import TracebackType


class Heartbeat:
    """`async with Heartbeat() as beat:` ... `beat.longest` (seconds), `beat.ticks`."""

    def __init__(self, period: float = 0.01) -> None:
        self.period = period
        self.ticks = 0
        self.longest = 0.0
        self._last = time.monotonic()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Heartbeat:
        self._task = asyncio.create_task(self._beat())
        await asyncio.sleep(0)
        return self

    async def _beat(self) -> None:
        self._last = time.monotonic()
        while True:
            await asyncio.sleep(self.period)
            self._tick()

    def _tick(self) -> None:
        now = time.monotonic()
        self.longest = max(self.longest, now - self._last)
        self.ticks += 1
        self._last = now

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        assert self._task is not None
        self._tick()  # a loop blocked until now counts too
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
