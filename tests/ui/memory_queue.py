"""A fast fake of the engine's queue windows (engine.queue_view) for dashboard tests without
an engine: fed the same events as the dashboard, it answers the queue pane's questions and
counts what it was asked and what it read."""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from typing import Any

from synapse_tui.engine.events import Event, JobDone, JobQueued, JobState, JobStateChanged
from synapse_tui.engine.queue_view import ACTIVE_FILTER, MAX_ROWS, Ask
from synapse_tui.ui.messages import QueueWindow, WindowRow
from synapse_tui.ui.widgets.job_rows import ACTIVE


class MemoryQueue:
    """Jobs by id with their state; a window costs its rows (bisect), not the queue."""

    def __init__(self) -> None:
        self.ids: list[int] = []  # ascending (new jobs have higher ids)
        self.jobs: dict[int, list[Any]] = {}  # id -> [path, size, state, sent, error]
        self.counts: dict[str, int] = {}
        self.active: set[int] = set()
        self.asks: list[Ask] = []
        self.rows_read = 0

    def add(self, job_id: int, path: str, size: int, state: str = "queued") -> None:
        if job_id in self.jobs:
            self.set_state(job_id, state)
            return
        if self.ids and job_id < self.ids[-1]:
            bisect.insort(self.ids, job_id)
        else:
            self.ids.append(job_id)
        self.jobs[job_id] = [path, size, state, 0, None]
        self.counts[state] = self.counts.get(state, 0) + 1
        if state in ACTIVE:
            self.active.add(job_id)

    def set_state(self, job_id: int, state: str, error: str | None = None) -> None:
        job = self.jobs.get(job_id)
        if job is None:
            return
        self.counts[job[2]] -= 1
        self.counts[state] = self.counts.get(state, 0) + 1
        job[2] = state
        if error:
            job[4] = error
        (self.active.add if state in ACTIVE else self.active.discard)(job_id)
        if state == "done":
            job[3] = job[1]

    def take(self, events: Iterable[Event]) -> None:
        for event in events:
            if isinstance(event, JobQueued):
                self.add(event.job_id, event.path, event.size)
            elif isinstance(event, JobStateChanged):
                error = event.message if event.state in (JobState.FAILED, JobState.PAUSED) else None
                self.set_state(event.job_id, event.state.value, error)
            elif isinstance(event, JobDone):
                self.set_state(event.job_id, "done")
            elif getattr(event, "sent", None) is not None and hasattr(event, "job_id"):
                job = self.jobs.get(event.job_id)
                if job is not None:
                    job[3] = event.sent  # type: ignore[attr-defined]

    def _matches(self, state: str, wanted: str | None) -> bool:
        if wanted is None:
            return True
        return state in ACTIVE if wanted == ACTIVE_FILTER else state == wanted

    async def window(self, ask: Ask) -> QueueWindow:
        self.asks.append(ask)
        ids = self.ids
        if ask.state is not None:  # filtered: a pass (only small tests filter)
            ids = [i for i in ids if self._matches(self.jobs[i][2], ask.state)]
        limit = max(0, min(MAX_ROWS, ask.limit))
        anchor = ask.at
        if ask.follow:
            live = [i for i in self.active if self._matches(self.jobs[i][2], ask.state)]
            anchor = min(live) if live else anchor
        if anchor is None:
            start = max(0, min(ask.offset, len(ids) - 1))
        else:
            start = max(0, bisect.bisect_left(ids, anchor) - ask.before)
            if start >= len(ids):
                start, anchor = max(0, len(ids) - limit), None
        chosen = ids[start : start + limit]
        self.rows_read += len(chosen)
        rows = [
            WindowRow(
                i,
                self.jobs[i][0],
                self.jobs[i][1],
                self.jobs[i][2],
                self.jobs[i][3],
                0,
                self.jobs[i][4],
            )
            for i in chosen
        ]
        counts = {k: v for k, v in self.counts.items() if v}
        return QueueWindow(start, len(ids), rows, anchor, counts)


def install(app: Any) -> MemoryQueue:
    """Answer `app`'s queue pane from a MemoryQueue fed whatever the dashboard is fed."""
    memory = MemoryQueue()
    dashboard = app.dashboard
    original = dashboard.apply

    def apply(update: Any) -> None:
        memory.take(update.events)
        queue = dashboard.queue  # composed by now
        if queue.asker.source is None:
            queue.asker.source = memory.window
        original(update)

    dashboard.apply = apply
    return memory
