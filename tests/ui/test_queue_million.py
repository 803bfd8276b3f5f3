"""The queue pane over a million jobs: it follows the active rows by default, and g/G, the
page keys and the state filter answer from windows of a screen (issue 21)."""

from __future__ import annotations

from typing import Any

import pytest

from synapse_tui.engine.events import JobState, JobStateChanged, TotalProgress
from synapse_tui.engine.queue_view import ACTIVE_FILTER, MAX_ROWS, Ask
from synapse_tui.ui.messages import EngineUpdate, QueueWindow, WindowRow
from synapse_tui.ui.widgets.job_queue import JobQueue
from tests.ui.conftest import Backend, settings_for, wait_for

JOBS = 1_000_000


class RangeQueue:
    """A million jobs in queue order, kept as three runs of ids: done [1, done], then
    uploading (`active` of them), then queued to the end. Each state's view is one run of
    ids, so a window is arithmetic: a fake engine that costs nothing per job."""

    def __init__(self, jobs: int, done: int, active: int) -> None:
        self.jobs, self.done, self.active = jobs, done, active
        self.asks: list[Ask] = []
        self.rows_read = 0

    def state(self, job_id: int) -> str:
        if job_id <= self.done:
            return "done"
        return "uploading" if job_id <= self.done + self.active else "queued"

    def span(self, state: str | None) -> tuple[int, int]:
        """The ids [lo, hi] of a view (hi < lo: none)."""
        first_active, first_queued = self.done + 1, self.done + self.active + 1
        spans = {
            None: (1, self.jobs),
            "done": (1, self.done),
            "uploading": (first_active, first_queued - 1),
            ACTIVE_FILTER: (first_active, first_queued - 1),
            "queued": (first_queued, self.jobs),
        }
        return spans.get(state, (1, 0))

    def counts(self) -> dict[str, int]:
        counts = {
            "done": self.done,
            "uploading": self.active,
            "queued": self.jobs - self.done - self.active,
        }
        return {k: v for k, v in counts.items() if v}

    def totals(self) -> TotalProgress:
        return TotalProgress(
            0, self.jobs * 64, self.done, self.jobs, 0.0, None, None, None, self.counts()
        )

    async def window(self, ask: Ask) -> QueueWindow:
        self.asks.append(ask)
        lo, hi = self.span(ask.state)
        total = max(0, hi - lo + 1)
        limit = max(0, min(MAX_ROWS, ask.limit))
        anchor = ask.at
        active_lo, active_hi = self.span(ACTIVE_FILTER)
        if ask.follow and active_lo <= active_hi and lo <= active_lo <= hi:
            anchor = active_lo
        if anchor is None:
            start = max(0, min(ask.offset, total - 1))
        else:
            start = max(0, min(max(anchor, lo), hi + 1) - lo - ask.before)
            if start >= total:
                start, anchor = max(0, total - limit), None
        ids = range(lo + start, min(hi, lo + start + limit - 1) + 1)
        self.rows_read += len(ids)
        rows = [
            WindowRow(i, f"/data/d{i // 1000:04d}/f{i:07d}.bin", 64, self.state(i), 0, 0, None)
            for i in ids
        ]
        return QueueWindow(start, total, rows, anchor, self.counts())


@pytest.fixture
def app(app_factory: Any, backend: Backend) -> Any:
    return app_factory(start_engine=False, settings=settings_for(backend))


async def settled(pilot: Any, queue: JobQueue) -> None:
    await pilot.pause()
    await wait_for(pilot, lambda: not queue.asker.busy)


def shown_ids(queue: JobQueue) -> list[int]:
    top, visible = round(queue.scroll_y), queue.scrollable_content_region.height - 1
    rows = [queue.model.row_at(i) for i in range(top, top + visible)]
    return [r.job_id for r in rows if r is not None]


async def test_a_million_jobs_follow_the_uploads_and_every_key_moves(app: Any) -> None:
    engine = RangeQueue(JOBS, done=600_000, active=16)
    async with app.run_test(size=(100, 30)) as pilot:
        queue = app.dashboard.queue
        queue.attach(engine.window)
        await pilot.press("2")
        app.dashboard.apply(EngineUpdate([engine.totals()], {}))
        await settled(pilot, queue)
        limit = queue._limit()
        visible = queue.scrollable_content_region.height - 1
        # Following is on by default: the active rows are on screen, not the first done ones.
        assert queue.following and "following" in str(queue.border_subtitle)
        assert queue.model.total == JOBS
        assert 600_001 in shown_ids(queue) and 1 not in shown_ids(queue)
        # The uploads move on: the view moves with them.
        engine.done += 5_000
        moved = [JobStateChanged(600_001, JobState.DONE)]
        app.dashboard.apply(EngineUpdate([*moved, engine.totals()], {}))
        await settled(pilot, queue)
        assert 605_001 in shown_ids(queue)
        # g: the first job; following stops.
        await pilot.press("g")
        await settled(pilot, queue)
        assert not queue.following and shown_ids(queue)[0] == 1
        assert "f: follow" in str(queue.border_subtitle)
        # Page keys: a screen at a time, the cursor on the job of its position.
        for _ in range(3):
            await pilot.press("pagedown")
        await settled(pilot, queue)
        assert queue.cursor_row == 3 * (visible - 1)
        assert queue.highlighted_job is not None
        assert queue.highlighted_job.job_id == 1 + queue.cursor_row
        await pilot.press("pageup")
        await settled(pilot, queue)
        assert queue.highlighted_job is not None
        assert queue.highlighted_job.job_id == 1 + 2 * (visible - 1)
        # The scrollbar to the end: the last million-th rows.
        queue.scroll_to(y=JOBS - visible, animate=False, immediate=True)
        await settled(pilot, queue)
        assert shown_ids(queue)[-1] == JOBS
        # G: following again, back on the active rows.
        await pilot.press("G")
        await settled(pilot, queue)
        assert queue.following and 605_001 in shown_ids(queue)
        # The state filter: active, queued, paused (none), failed (none), done, all again.
        await pilot.press("slash")
        await settled(pilot, queue)
        assert queue.model.filter == ACTIVE_FILTER
        assert shown_ids(queue) == list(range(605_001, 605_017))
        await pilot.press("slash")
        await settled(pilot, queue)
        assert queue.model.filter == "queued" and queue.model.total == JOBS - 605_016
        assert shown_ids(queue)[0] == 605_017
        await pilot.press("slash", "slash")
        await settled(pilot, queue)
        assert queue.model.filter == "failed" and queue.model.total == 0
        assert shown_ids(queue) == []
        await pilot.press("slash")
        await settled(pilot, queue)
        assert queue.model.filter == "done" and queue.model.total == 605_000
        await pilot.press("G")  # the done jobs' end: the last one done
        await settled(pilot, queue)
        assert queue.highlighted_job is not None
        assert queue.highlighted_job.job_id in shown_ids(queue)
        await pilot.press("g")
        await settled(pilot, queue)
        assert shown_ids(queue)[0] == 1
        await pilot.press("escape")
        await settled(pilot, queue)
        assert queue.model.filter is None and queue.model.total == JOBS
        # Never more than a screen and its margin held, never more read than asked for.
        assert len(queue.rows_by_id) <= limit
        assert all(a.limit <= limit for a in engine.asks)
        assert engine.rows_read <= len(engine.asks) * limit
