"""Engine events to dashboard batches, for both bridges: progress coalesced, the rest hurried.

Only the latest JobProgress per job and the latest TotalProgress/ScanProgress survive,
flushed at most `interval` apart; everything else (state changes, done, failed, log lines)
within `urgent`. A batch is O(jobs that changed since the last one), never O(queue).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Protocol

from synapse_tui.engine.events import (
    Event,
    JobProgress,
    JobQueued,
    JobStateChanged,
    ScanProgress,
    TotalProgress,
)
from synapse_tui.ui.messages import EngineUpdate, JobView

log = logging.getLogger("synapse_tui.ui")


class Poster(Protocol):
    def post_message(self, message: Any) -> bool: ...


# The views of the jobs a batch touched (the in-thread bridge reads them from the engine).
Views = Callable[[set[int]], dict[int, JobView]]


def no_views(_touched: set[int]) -> dict[int, JobView]:
    return {}


class Coalescer:
    """Collects events on one loop and posts them to `target` as EngineUpdate batches."""

    def __init__(
        self,
        target: Poster,
        *,
        interval: float = 0.25,
        urgent: float = 0.05,
        views: Views = no_views,
    ) -> None:
        self.target = target
        self.posted = 0  # messages posted (tests check the coalescing)
        self.interval = interval
        self.urgent = urgent
        self.views = views
        self.held = False  # while True, nothing is flushed early (a client still loading)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._batch: list[Event] = []
        self._progress: dict[int, JobProgress] = {}
        self._total: TotalProgress | None = None
        self._scan: ScanProgress | None = None
        self._touched: set[int] = set()
        self._urgent: asyncio.TimerHandle | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._flushed = 0.0  # when the last batch went (the loop's clock)

    def post(self, message: Any) -> None:
        """Post `message` to the app (any thread); an app that is gone is no error."""
        self.posted += 1
        try:
            self.target.post_message(message)
        except Exception:
            log.debug("post failed", exc_info=True)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Flush every `interval` on `loop` (call it on that loop)."""
        self.loop = loop
        self._flusher = loop.create_task(self._flush_loop(), name="coalesce-flush")

    def stop(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            self._flusher = None

    def take(self, event: Event) -> None:
        """One engine event (on the loop's thread): coalesce progress, hurry the rest."""
        if isinstance(event, JobProgress):
            self._progress[event.job_id] = event
            return
        if isinstance(event, TotalProgress):
            self._total = event
            return
        if isinstance(event, ScanProgress) and not event.done:
            self._scan = event
            return
        if isinstance(event, ScanProgress):
            self._scan = None
        job_id = getattr(event, "job_id", None)
        if isinstance(event, JobQueued | JobStateChanged) and job_id is not None:
            self._touched.add(job_id)
        self._batch.append(event)
        if self._urgent is None and not self.held and self.loop is not None:
            # A lone change within `urgent`; a stream of them (hundreds of small files a
            # second) at most every `interval`, as progress is: each batch costs the
            # dashboard a frame, and a frame per change repainted the queue 20 times a
            # second (bench 6d).
            wait = max(self.urgent, self._flushed + self.interval - self.loop.time())
            self._urgent = self.loop.call_later(wait, self.flush)

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self.flush()

    def flush(self) -> None:
        if self._urgent is not None:
            self._urgent.cancel()
            self._urgent = None
        events: list[Event] = list(self._progress.values())
        events.extend(self._batch)
        if self._scan is not None:
            events.append(self._scan)
        if self._total is not None:
            events.append(self._total)
        if not events:
            return
        if self.loop is not None:  # a batch went: the next stream waits an interval from here
            self._flushed = self.loop.time()
        touched = self._touched | set(self._progress)
        self._batch, self._progress, self._total, self._scan = [], {}, None, None
        self._touched = set()
        self.post(EngineUpdate(events, self.views(touched)))
