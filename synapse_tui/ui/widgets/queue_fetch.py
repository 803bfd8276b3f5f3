"""The queue pane's questions to the engine: one in flight at most, never one per event."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from synapse_tui.engine.queue_view import Ask
from synapse_tui.ui.messages import QueueWindow

log = logging.getLogger("synapse_tui.ui")
Source = Callable[[Ask], Awaitable[QueueWindow]]
# Between the end of one question and the next: key repeats and event batches that come
# faster are folded into one question, so the engine answers at most 1/GAP a second.
GAP = 0.05


class Asker:
    """Asks `source` for the window `make()` describes and gives the answer to `take`.

    `kick()` says the window may be stale: with no question in flight one is asked at once
    (or when GAP has passed since the last); with one in flight, one more is asked after it,
    made then (so it asks for where the view is by then, not where it was)."""

    def __init__(
        self,
        make: Callable[[], Ask | None],
        take: Callable[[Ask, QueueWindow], None],
        gap: float = GAP,
    ) -> None:
        self.make = make
        self.take = take
        self.gap = gap
        self.source: Source | None = None
        self.asked = 0  # questions asked (tests count them)
        self.rows = 0  # rows received
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._again = False
        self._ended = 0.0

    @property
    def busy(self) -> bool:
        return self._task is not None or self._timer is not None

    def kick(self) -> None:
        if self.source is None:
            return
        if self._task is not None or self._timer is not None:
            self._again = True
            return
        wait = self._ended + self.gap - time.monotonic()
        loop = asyncio.get_running_loop()
        if wait > 0:
            self._timer = loop.call_later(wait, self._fire)
            return
        self._start(loop)

    def _fire(self) -> None:
        self._timer = None
        self._start(asyncio.get_running_loop())

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._again = False
        ask = self.make()
        if ask is None or self.source is None:
            return
        self.asked += 1
        self._task = loop.create_task(self._ask(self.source, ask), name="queue-window")

    async def _ask(self, source: Source, ask: Ask) -> None:
        window: QueueWindow | None = None
        try:
            window = await source(ask)
        except Exception:  # the engine went away or failed: keep what is shown
            log.debug("queue window not read", exc_info=True)
        finally:
            self._task = None
            self._ended = time.monotonic()
        if window is not None:
            self.rows += len(window.rows)
            self.take(ask, window)
        if self._again:
            self.kick()

    def close(self) -> None:
        self.source = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._task is not None:
            self._task.cancel()
            self._task = None
