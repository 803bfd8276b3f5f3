"""The virtual queue pane: it holds what it shows and asks for windows, whatever the queue."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from synapse_tui.engine.events import JobState, JobStateChanged, TotalProgress
from synapse_tui.ui.messages import EngineUpdate
from synapse_tui.ui.widgets.job_queue import JobQueue
from tests.ui.conftest import Backend, settings_for, wait_for
from tests.ui.memory_queue import MemoryQueue, install

QUEUED = 100_000


@pytest.fixture
def app(app_factory: Any, backend: Backend) -> Any:
    return app_factory(start_engine=False, settings=settings_for(backend))


def totals(memory: MemoryQueue) -> TotalProgress:
    counts = {k: v for k, v in memory.counts.items() if v}
    files = sum(counts.values())
    return TotalProgress(0, files * 64, counts.get("done", 0), files, 0.0, None, None, None, counts)


def feed(app: Any, *events: Any) -> None:
    app.dashboard.apply(EngineUpdate(list(events), {}))


async def settled(pilot: Any, queue: JobQueue) -> None:
    await pilot.pause()
    await wait_for(pilot, lambda: not queue.asker.busy)


def shown_ids(queue: JobQueue) -> list[int]:
    top, visible = round(queue.scroll_y), queue.scrollable_content_region.height - 1
    rows = [queue.model.row_at(i) for i in range(top, top + visible)]
    return [r.job_id for r in rows if r is not None]


async def test_a_hundred_thousand_jobs_cost_a_window_per_tick(app: Any) -> None:
    """Per tick the pane asks at most a couple of windows of a screen and a margin, and
    holds no more: O(rows shown + active jobs), never O(queue)."""
    memory = install(app)
    for n in range(1, QUEUED + 1):
        memory.add(n, f"/data/d{n // 1000:03d}/f{n:06d}.bin", 64)
    async with app.run_test(size=(100, 30)) as pilot:
        queue = app.dashboard.queue
        await pilot.press("2")
        feed(app, totals(memory))  # what the engine's first progress says
        await settled(pilot, queue)
        assert queue.model.total == QUEUED and shown_ids(queue)[0] == 1
        limit = queue._limit()
        asks_before = len(memory.asks)
        ticks, active, first = 60, 16, 1
        for _ in range(ticks):
            done = range(first, first + active)
            first += active
            started = range(first, first + active)
            events: list[Any] = [JobStateChanged(n, JobState.DONE) for n in done]
            events += [JobStateChanged(n, JobState.UPLOADING) for n in started]
            memory.take(events)
            feed(app, *events, totals(memory))
            await settled(pilot, queue)
            assert len(queue.rows_by_id) <= limit  # never more than a window held
        asks = memory.asks[asks_before:]
        assert len(asks) <= 2 * ticks  # one question per batch, or two: never one per event
        assert all(a.limit <= limit and a.follow for a in asks)
        assert memory.rows_read <= (len(memory.asks)) * limit
        # following: the first active row (job `first`) is on screen, under two done ones
        assert queue.following and first in shown_ids(queue)
        cursor = queue.highlighted_job  # where following last brought the active row
        assert cursor is not None and cursor.job_id in shown_ids(queue)
        assert queue.counts()["done"] == ticks * active
        # navigation: each key a window at most, the rows where they should be
        await pilot.press("G")
        await settled(pilot, queue)
        assert first in shown_ids(queue)  # G follows again: the active rows
        await pilot.press("g")
        await settled(pilot, queue)
        assert not queue.following and shown_ids(queue)[0] == 1
        visible = queue.scrollable_content_region.height - 1
        for _ in range(5):
            await pilot.press("pagedown")
        await settled(pilot, queue)
        assert queue.highlighted_job is not None
        assert queue.highlighted_job.job_id == 1 + queue.cursor_row
        assert queue.cursor_row == 5 * (visible - 1)
        queue.scroll_to(y=QUEUED // 2, animate=False, immediate=True)  # the scrollbar
        await settled(pilot, queue)
        assert shown_ids(queue)[0] == QUEUED // 2 + 1
        assert len(queue.rows_by_id) <= limit
        assert len(memory.asks) - asks_before <= 2 * ticks + 12


async def test_filter_by_state_and_the_cursor_stays_on_its_job(app: Any) -> None:
    memory = install(app)
    for n in range(1, 201):
        memory.add(n, f"/data/f{n:04d}.bin", 64)
    async with app.run_test(size=(100, 30)) as pilot:
        queue = app.dashboard.queue
        feed(app, totals(memory))
        await pilot.press("2")
        await settled(pilot, queue)
        await pilot.press("slash", "slash")  # every job -> active -> queued
        await settled(pilot, queue)
        assert queue.model.filter == "queued" and "queued" in str(queue.border_subtitle)
        await pilot.press("j", "j", "j")  # on job 4
        assert queue.highlighted_job is not None and queue.highlighted_job.job_id == 4
        # jobs 1 and 2 leave the queued view (they run): job 4 keeps the cursor
        events = [JobStateChanged(1, JobState.UPLOADING), JobStateChanged(2, JobState.DONE)]
        memory.take(events)
        feed(app, *events, totals(memory))
        await settled(pilot, queue)
        assert queue.highlighted_job is not None and queue.highlighted_job.job_id == 4
        assert queue.cursor_row == 1 and queue.model.total == 198
        await pilot.press("slash")  # paused: none
        await settled(pilot, queue)
        assert queue.model.filter == "paused" and queue.model.total == 0
        assert queue.highlighted_job is None
        await pilot.press("escape")  # every job again
        await settled(pilot, queue)
        assert queue.model.filter is None and queue.model.total == 200
        assert shown_ids(queue)[:3] == [1, 2, 3]


async def test_the_active_filter_shows_only_running_jobs(app: Any) -> None:
    memory = install(app)
    for n in range(1, 101):
        memory.add(n, f"/data/f{n:04d}.bin", 64, "uploading" if n in (30, 70) else "queued")
    async with app.run_test(size=(100, 30)) as pilot:
        queue = app.dashboard.queue
        feed(app, totals(memory))
        await pilot.press("2", "slash")
        await settled(pilot, queue)
        assert queue.model.filter == "active" and shown_ids(queue) == [30, 70]


def test_the_pane_holds_no_job_it_does_not_show(tmp_path: Path) -> None:
    """The model drops the rows of an old window when a new one comes."""
    from synapse_tui.ui.messages import QueueWindow, WindowRow
    from synapse_tui.ui.widgets.queue_model import QueueModel

    model = QueueModel()
    model.take(
        QueueWindow(0, 10_000, [WindowRow(i, f"/f{i}", 1, "queued", 0, 0, None) for i in range(50)])
    )
    model.take(
        QueueWindow(
            5000,
            10_000,
            [WindowRow(i, f"/f{i}", 1, "queued", 0, 0, None) for i in range(5000, 5050)],
        )
    )
    assert sorted(model.by_id) == list(range(5000, 5050)) and model.position(5001) == 5001
    assert model.holds(5000, 5050) and not model.holds(4999, 5001)


MANY = 2000


async def test_a_real_engine_with_thousands_of_jobs(
    app_factory: Any, backend: Backend, tmp_path: Path
) -> None:
    """End to end (the in-thread engine, the embedded backend): thousands of small files
    queued while drained, then uploaded; the pane holds a window, asks about once a batch,
    and `G`, `g`, the state filter and following find the right rows."""
    folder = tmp_path / "many"
    folder.mkdir()
    for n in range(MANY):
        (folder / f"f{n:05d}.bin").write_bytes(f"{n:08d}".encode() * 8)
    app = app_factory(directory=tmp_path, settings=settings_for(backend))
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.bridge is not None and app.bridge.running)
        queue = app.dashboard.queue
        await pilot.press("2", "d")  # drain: queued, none started
        app.bridge.queue_paths([bytes(folder)])
        await wait_for(pilot, lambda: queue.counts().get("queued") == MANY, timeout=120)
        await settled(pilot, queue)
        limit = queue._limit()
        assert queue.model.total == MANY and len(queue.rows_by_id) <= limit
        await pilot.press("G")  # nothing runs: the last row
        await settled(pilot, queue)
        last = queue.highlighted_job
        assert last is not None and last.path.endswith(f"f{MANY - 1:05d}.bin")
        await pilot.press("g")
        await settled(pilot, queue)
        first = queue.highlighted_job
        assert first is not None and first.path.endswith("f00000.bin")
        await pilot.press("slash", "slash")  # the queued ones
        await settled(pilot, queue)
        assert queue.model.filter == "queued" and queue.model.total == MANY
        await pilot.press("escape", "f")  # every job, following
        asked = queue.asker.asked
        posted = app.bridge.coalescer.posted
        await pilot.press("d")  # undrain: they upload
        peak = 0

        def finished() -> bool:
            nonlocal peak
            peak = max(peak, len(queue.rows_by_id))
            return queue.counts().get("done") == MANY

        await wait_for(pilot, finished, timeout=300)
        batches = app.bridge.coalescer.posted - posted
        assert peak <= limit
        assert queue.asker.asked - asked <= batches + 5  # a question a batch at most
        assert len(backend.stored()) == MANY
        await app.shutdown_engine()
