"""The job queue widget: keys, scrolling, clicks, and redrawing only the lines that changed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from synapse_tui.engine.events import JobProgress, JobQueued, JobState, JobStateChanged
from synapse_tui.ui.messages import EngineUpdate
from synapse_tui.ui.widgets.job_queue import JobQueue
from tests.ui.conftest import Backend, settings_for

MiB = 1 << 20


@pytest.fixture
def app(app_factory: Any, backend: Backend) -> Any:
    """The dashboard without an engine: the tests feed the queue engine events themselves."""
    return app_factory(start_engine=False, settings=settings_for(backend))


def queue_jobs(app: Any, data_dir: Path, count: int) -> JobQueue:
    jobs = [JobQueued(i, str(data_dir / f"file{i:02d}.bin"), 10 * MiB) for i in range(count)]
    app.dashboard.apply(EngineUpdate(list(jobs), {}))
    return app.dashboard.queue


def screen_text(app: Any) -> str:
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


async def test_keys_move_the_cursor_and_keep_it_in_view(app: Any, data_dir: Path) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        queue = queue_jobs(app, data_dir, 40)
        await pilot.press("2")  # the queue pane
        await pilot.pause()
        assert app.focused is queue and queue.highlighted_job.job_id == 0
        await pilot.press("j", "j", "down", "k")
        assert queue.highlighted_job.job_id == 2
        await pilot.press("end")
        await pilot.pause()
        assert queue.highlighted_job.job_id == 39
        assert queue.scroll_y > 0
        assert "file39.bin" in screen_text(app) and "file00.bin" not in screen_text(app)
        await pilot.press("pageup")
        assert queue.cursor_row < 39
        await pilot.press("home")
        await pilot.pause()
        assert queue.highlighted_job.job_id == 0 and queue.scroll_y == 0
        assert "file00.bin" in screen_text(app)
        await pilot.press("k")  # stays on the first job
        assert queue.cursor_row == 0


async def test_enter_and_double_click_open_the_details(app: Any, data_dir: Path) -> None:
    opened: list[int] = []
    async with app.run_test(size=(120, 40)) as pilot:
        queue = queue_jobs(app, data_dir, 5)
        app.show_job = opened.append
        await pilot.pause()
        # the header is line 0 of the content; job 3 is on line 4
        await pilot.click(queue, offset=(queue.gutter.left + 5, queue.gutter.top + 4))
        assert queue.cursor_row == 3 and opened == []
        await pilot.click(queue, offset=(queue.gutter.left + 5, queue.gutter.top + 4), times=2)
        await pilot.pause()
        assert opened == [3]
        queue.focus()
        await pilot.press("j", "enter")
        await pilot.pause()
        assert opened == [3, 4]


async def test_progress_redraws_only_its_own_line(app: Any, data_dir: Path) -> None:
    async with app.run_test(size=(120, 40)) as pilot:
        queue = queue_jobs(app, data_dir, 6)
        await pilot.pause()
        drawn: list[int] = []
        original = queue.render_line

        def render_line(y: int) -> Any:
            drawn.append(y)
            return original(y)

        queue.render_line = render_line  # type: ignore[method-assign]
        update = [
            JobStateChanged(4, JobState.UPLOADING),
            JobProgress(4, 5 * MiB, 10 * MiB, 1e6, 5.0),
        ]
        app.dashboard.apply(EngineUpdate(update, {}))
        await pilot.pause()
        assert set(drawn) == {5}  # job 4 is the fifth row, under the header
        assert queue.cells(4)[0].plain.endswith("upload")
        assert "50%" in queue.cells(4)[3].plain
        assert "50%" in screen_text(app)
        drawn.clear()
        # progress the eye would not see (same cells) draws nothing
        app.dashboard.apply(EngineUpdate([JobProgress(4, 5 * MiB - 1000, 10 * MiB, 1e6, 5.0)], {}))
        await pilot.pause()
        assert drawn == []


async def test_a_new_theme_recolours_the_rows(app: Any, data_dir: Path) -> None:
    async with app.run_test(size=(120, 40)) as pilot:
        queue = queue_jobs(app, data_dir, 3)
        app.dashboard.apply(EngineUpdate([JobStateChanged(1, JobState.UPLOADING)], {}))
        await pilot.pause()

        def colours() -> tuple[Any, Any]:
            state = next(iter(queue.render_line(2)))  # job 1: the second row
            assert state.style is not None
            return state.style.color, state.style.bgcolor

        before = colours()
        app.theme = "synapse-light"
        await pilot.pause()
        after = colours()
        assert after != before
        primary = app.theme_variables["primary"].lower()
        assert after[0] is not None and after[0].triplet.hex == primary  # "▲ upload" in primary
