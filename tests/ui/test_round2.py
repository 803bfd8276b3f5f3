"""The dashboard, round 2: honest numbers, visible trouble, nothing destructive by accident."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from synapse_tui.engine.events import (
    BackendState,
    JobProgress,
    JobQueued,
    JobRetrying,
    JobState,
    JobStateChanged,
    ScanProgress,
    TotalProgress,
)
from synapse_tui.ui.messages import EngineUpdate, JobDetails
from synapse_tui.ui.screens.confirm import ConfirmScreen
from synapse_tui.ui.screens.job_details import details_table
from synapse_tui.ui.screens.prompt import PromptScreen
from synapse_tui.ui.widgets.summary_bar import SummaryBar
from tests.ui.conftest import Backend, settings_for, wait_for

MiB = 1 << 20


class FakeBridge:
    """Records what the dashboard asks of the engine; the engine itself never moves."""

    running = True

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def __getattr__(self, name: str) -> Any:
        def record(*args: Any) -> None:
            self.calls.append((name, args))

        return record


@pytest.fixture
def app(app_factory: Any, backend: Backend) -> Any:
    return app_factory(start_engine=False, settings=settings_for(backend))


def feed(app: Any, *events: Any) -> None:
    app.dashboard.apply(EngineUpdate(list(events), {}))


def uploading(job_id: int, sent: int = 0, size: int = 100 * MiB) -> list[Any]:
    return [
        JobQueued(job_id, f"/data/file{job_id:03d}.bin", size),
        JobStateChanged(job_id, JobState.UPLOADING),
        JobProgress(job_id, sent, size, 3.7 * MiB, 78.0),
    ]


def row_text(app: Any, job_id: int) -> list[str]:
    return [cell.plain.strip() for cell in app.dashboard.queue.cells(job_id)]


def screen_text(app: Any) -> str:
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


# -- trouble that shows ------------------------------------------------------------------


async def test_a_retrying_job_says_so_in_its_row_and_the_header(app: Any) -> None:
    async with app.run_test(size=(120, 40)) as pilot:
        feed(app, *uploading(1, sent=10 * MiB))
        assert row_text(app, 1)[4] == "3.7MiB/s" and row_text(app, 1)[5] == "1m18s"
        failing_since = time.time() - 5
        feed(
            app,
            JobRetrying(1, 3, 12, 40.0, "connection refused"),
            BackendState(False, failing_since, "connection refused"),
        )
        await pilot.pause()
        cells = row_text(app, 1)
        assert cells[0] == "↻ retry"
        assert cells[4] in ("retry 3/12 in 40s", "retry 3/12 in 39s")  # no stale rate
        assert cells[6] == "3"  # the Try column
        stamp = time.strftime("%H:%M:%S", time.localtime(failing_since))
        banner = str(app.dashboard.query_one("#banner").render())
        assert f"failing since {stamp}" in banner and "connection refused" in banner
        assert app.dashboard.query_one("#banner").has_class("-failing")
        # bytes move again: the note goes, the header says the backend answers
        feed(app, JobProgress(1, 11 * MiB, 100 * MiB, 3.0 * MiB, 30.0), BackendState(True, None))
        await pilot.pause()
        assert row_text(app, 1)[0] == "▲ upload" and "retry" not in row_text(app, 1)[4]
        assert "reachable" in str(app.dashboard.query_one("#banner").render())
        feed(app, BackendState(False, failing_since, "connection refused"))
        app.dashboard.query_one("#banner").host = "https://other.example"  # engine restarted
        await pilot.pause()
        banner = str(app.dashboard.query_one("#banner").render())
        assert "failing" not in banner and "reachable" not in banner


async def test_backend_down_end_to_end_then_retry_now(
    app_factory: Any, backend: Backend, data_dir: Path
) -> None:
    """The real thing: the backend stops mid-upload; the row and header say so; `r` retries
    at once when it is back (no waiting out the backoff)."""
    (data_dir / "big.bin").write_bytes(b"\x07" * 1024 * 1024)
    settings = settings_for(backend, bwlimit=float(256 * 1024), retries=12)
    app = app_factory(settings=settings)
    async with app.run_test(size=(120, 40)) as pilot:
        from tests.ui.test_flows import go_to

        await go_to(pilot, app.dashboard.browser, b"big.bin")
        await pilot.press("u")
        queue = app.dashboard.queue
        await wait_for(pilot, lambda: any(r.sent > 0 for r in queue.rows_by_id.values()))
        [row] = queue.rows_by_id.values()
        await wait_for(
            pilot, lambda: "reachable" in str(app.dashboard.query_one("#banner").render())
        )
        backend.stop()
        await wait_for(pilot, lambda: row.retry is not None, timeout=30)
        assert "retry" in row_text(app, row.job_id)[4]
        assert int(row_text(app, row.job_id)[6]) >= 1
        await wait_for(
            pilot, lambda: "failing since" in str(app.dashboard.query_one("#banner").render())
        )
        app.dashboard.set_bandwidth(None)
        backend.start()  # same port, same root
        await pilot.press("r")  # retry now
        await wait_for(pilot, lambda: row.state == "done", timeout=30)
        assert "reachable" in str(app.dashboard.query_one("#banner").render())
        assert backend.stored() == [b"\x07" * 1024 * 1024]
        await app.shutdown_engine()


async def test_an_upload_without_progress_reads_stalled_not_its_old_rate(app: Any) -> None:
    async with app.run_test(size=(120, 40)) as pilot:
        feed(app, *uploading(1, sent=10 * MiB))
        feed(app, JobProgress(1, 11 * MiB, 100 * MiB, 3.7 * MiB, 78.0))
        row = app.dashboard.queue.rows_by_id[1]
        assert row_text(app, 1)[4] == "3.7MiB/s"
        row.progress_at -= 6  # six seconds without a byte acknowledged
        app.dashboard.queue._tick()
        await pilot.pause()
        assert row_text(app, 1)[4] == "stalled" and row_text(app, 1)[5] == ""


async def test_pause_says_pausing_at_once(app: Any) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        app.bridge = FakeBridge()
        feed(app, *uploading(1, sent=10 * MiB))
        await pilot.press("2", "p")
        assert row_text(app, 1)[0] == "‖ pausing…"
        assert row_text(app, 1)[4] == ""  # no rate: it is stopping
        assert ("pause", (1,)) in app.bridge.calls
        feed(app, JobStateChanged(1, JobState.PAUSED, "paused"))
        assert row_text(app, 1)[0] == "‖ paused"


async def test_concurrency_changes_make_no_toasts(app: Any) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        app.bridge = FakeBridge()
        await pilot.press("2", *["greater_than_sign"] * 20)
        await pilot.pause()
        assert app.dashboard.counts.concurrency == 24
        assert list(app._notifications) == []
        assert "×24 at once" in app.dashboard.summary.text(200)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=lambda s: f"{s[0]}x{s[1]}")
async def test_summary_line_on_every_tab(app: Any, size: tuple[int, int]) -> None:
    async with app.run_test(size=size) as pilot:
        feed(app, *uploading(1, sent=10 * MiB), *uploading(2))
        feed(app, TotalProgress(10 * MiB, 200 * MiB, 0, 2, 3.7 * MiB, 50.0, 45.0, 60.0))
        for pane in ("1", "2", "3", "4"):
            await pilot.press(pane)
            await pilot.pause()
            summary = app.dashboard.summary
            region = summary.region
            assert summary.display and region.height == 1 and region.bottom <= size[1] - 1
            line = summary.render().plain if hasattr(summary.render(), "plain") else ""
            line = screen_text(app).splitlines()[region.y]
            assert "▲ 2 active" in line and "0/2 done" in line
            assert "3.7 MiB/s" in line and "ETA 45s – 1m00s" in line


async def test_resumed_jobs_are_said_after_a_relaunch(app: Any) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        feed(app, *(JobQueued(n, f"/data/f{n}.bin", MiB, resumed=True) for n in range(8)))
        await pilot.pause()
        assert "8 resumed" in app.dashboard.summary.text(80)


async def test_stalled_instead_of_a_number(app: Any) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        feed(app, *uploading(1, sent=10 * MiB))
        feed(app, TotalProgress(10 * MiB, 100 * MiB, 0, 1, 0.0, None, None, None, stalled=True))
        await pilot.pause()
        assert "ETA stalled" in app.dashboard.summary.text(80)
        assert "ETA stalled" in app.dashboard.counts.text()


def test_files_per_second_shows_for_small_files() -> None:
    bar = SummaryBar()
    now = [100.0]
    bar.files.clock = lambda: now[0]
    bar.files_total = 2000
    bar.rate = 2 * MiB
    for n in range(11):  # 40 small files a second
        now[0] += 1.0
        bar.files.add(40 * n)
    bar.counts = {"uploading": 4, "done": 400, "queued": 1596}
    text = bar.text(200)
    assert "40 files/s" in text and "400/2000 done" in text and "1600 left" in text
    big = SummaryBar()  # a few large files: no files/s
    big.files.add(0)
    assert "files/s" not in big.text(200)


# -- the queue follows the uploads ---------------------------------------------------------


async def test_queue_follows_the_active_rows_until_a_manual_move(app: Any) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        queue = app.dashboard.queue
        feed(app, *(JobQueued(n, f"/data/small{n:03d}.bin", 1000) for n in range(80)))
        await pilot.press("2")
        visible = queue.scrollable_content_region.height - 1

        def shown(job_id: int) -> bool:
            top = round(queue.scroll_y)
            return top <= job_id < top + visible

        done = [JobStateChanged(n, JobState.DONE) for n in range(40)]
        feed(app, *done, *(JobStateChanged(n, JobState.UPLOADING) for n in range(40, 44)))
        await pilot.pause()
        assert queue.following and shown(40) and shown(43)
        assert queue.highlighted_job.job_id == 40
        await pilot.press("k")  # a manual move: following stops
        assert not queue.following
        top = queue.scroll_y
        feed(app, *(JobStateChanged(n, JobState.DONE) for n in range(40, 60)))
        feed(app, *(JobStateChanged(n, JobState.UPLOADING) for n in range(60, 64)))
        await pilot.pause()
        assert queue.scroll_y == top and not shown(60)
        assert "f: follow" in str(queue.border_subtitle)
        await pilot.press("f")  # follow again
        await pilot.pause()
        assert queue.following and shown(60) and shown(63)
        await pilot.press("g")
        assert not queue.following
        await pilot.press("G")  # the last row, and following again
        assert queue.following


async def test_a_hidden_queue_follows_when_shown(app: Any) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        queue = app.dashboard.queue
        feed(app, *(JobQueued(n, f"/data/small{n:03d}.bin", 1000) for n in range(80)))
        feed(app, *(JobStateChanged(n, JobState.DONE) for n in range(50)))
        feed(app, JobStateChanged(50, JobState.UPLOADING))
        await pilot.pause()
        assert queue.cursor_row == 0  # hidden behind the Files tab: nothing moved
        await pilot.press("2")
        await wait_for(pilot, lambda: queue.highlighted_job.job_id == 50)
        top = round(queue.scroll_y)
        assert top <= 50 < top + queue.scrollable_content_region.height - 1


# -- nothing destructive by accident -------------------------------------------------------


async def test_cancel_asks_once_a_job_sent_data(app: Any) -> None:
    async with app.run_test(size=(120, 40)) as pilot:
        bridge = app.bridge = FakeBridge()
        feed(app, *uploading(1, sent=10 * MiB), JobQueued(2, "/data/fresh.bin", MiB))
        await pilot.press("tab")  # the queue
        await pilot.press("x")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert "10.0 MiB of 100.0 MiB sent" in screen_text(app)
        await pilot.press("n")
        await wait_for(pilot, lambda: not isinstance(app.screen, ConfirmScreen))
        assert not [c for c in bridge.calls if c[0] == "cancel"]
        await pilot.press("x")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")  # one key confirms
        await wait_for(pilot, lambda: ("cancel", (1,)) in bridge.calls)
        await pilot.press("j", "x")  # nothing sent yet: cancelled without a question
        await wait_for(pilot, lambda: ("cancel", (2,)) in bridge.calls)
        assert not isinstance(app.screen, ConfirmScreen)


async def test_cancel_all_asks_once(app: Any) -> None:
    async with app.run_test(size=(120, 40)) as pilot:
        bridge = app.bridge = FakeBridge()
        feed(app, *uploading(1, sent=10 * MiB), *uploading(2, sent=MiB), *uploading(3))
        feed(app, JobStateChanged(3, JobState.DONE))
        await pilot.press("X")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert "Cancel all 2 unfinished jobs?" in screen_text(app)
        await pilot.press("y")
        await wait_for(pilot, lambda: not isinstance(app.screen, ConfirmScreen))
        await wait_for(pilot, lambda: len([c for c in bridge.calls if c[0] == "cancel"]) == 2)
        assert {c[1] for c in bridge.calls if c[0] == "cancel"} == {(1,), (2,)}


async def test_concurrency_keys_work_from_every_pane(app: Any) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        app.bridge = FakeBridge()
        for n, pane in enumerate(("1", "2", "3", "4"), 1):
            await pilot.press(pane, "greater_than_sign")
            assert app.dashboard.counts.concurrency == 4 + n
        await pilot.press("less_than_sign")
        assert app.dashboard.counts.concurrency == 7
        await pilot.press("1", "plus")  # `+` in the browser: still mark by glob
        await wait_for(pilot, lambda: isinstance(app.screen, PromptScreen))
        assert app.dashboard.counts.concurrency == 7


# -- looks -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("term", "colorterm", "chosen", "expected"),
    [
        ("linux", None, None, "synapse-16color"),
        ("xterm", None, None, "synapse-16color"),
        ("xterm-256color", None, None, "synapse-dark"),
        ("xterm", "truecolor", None, "synapse-dark"),
        ("linux", None, "synapse-light", "synapse-light"),  # the user's choice wins
    ],
)
async def test_sixteen_colour_terminal_gets_the_16_colour_theme(
    app_factory: Any,
    backend: Backend,
    monkeypatch: pytest.MonkeyPatch,
    term: str,
    colorterm: str | None,
    chosen: str | None,
    expected: str,
) -> None:
    monkeypatch.setenv("TERM", term)
    if colorterm is None:
        monkeypatch.delenv("COLORTERM", raising=False)
    else:
        monkeypatch.setenv("COLORTERM", colorterm)
    app = app_factory(start_engine=False, settings=settings_for(backend, theme=chosen))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert app.theme == expected


@pytest.mark.parametrize(
    "theme", ["synapse-dark", "synapse-light", "synapse-high-contrast", "synapse-16color"]
)
async def test_the_progress_bar_track_is_visible(app: Any, theme: str) -> None:
    async with app.run_test(size=(120, 40)) as pilot:
        app.theme = theme
        feed(app, TotalProgress(30 * MiB, 100 * MiB, 0, 2, 0.0, None, None, None))
        await pilot.pause()
        bar = app.dashboard.query_one("#overall-bar")
        strip = bar.render_line(0)
        filled = [s for s in strip if "█" in s.text]
        track = [s for s in strip if "░" in s.text]
        assert filled and track
        assert sum(len(s.text) for s in track) > sum(len(s.text) for s in filled)
        for segment in track:  # the empty part drawn in a colour of its own, not the panel's
            style = segment.style
            assert style is not None and style.color is not None
            assert style.color != style.bgcolor


async def test_graph_spans_the_pane_with_a_labelled_scale(app_factory: Any) -> None:
    app = app_factory(frozen=True, start_engine=False)  # frozen: no sampling timer
    async with app.run_test(size=(120, 40)) as pilot:
        graph = app.dashboard.query_one("#graph")
        throughput = app.dashboard.query_one("#throughput")
        throughput.samples.extend([10 * MiB, 40 * MiB, 62.5 * MiB, 30 * MiB])
        graph.refresh()
        await pilot.pause()
        pane = app.dashboard.query_one("#progress")
        assert graph.region.width >= pane.content_region.width - 1
        lines = [graph.render_line(y).text for y in range(graph.size.height)]
        assert lines[0].lstrip().startswith("62.5MiB/s ┤")  # the peak in view, at the top
        assert lines[-1].lstrip().startswith("0 ┤")
        assert lines[-1].rstrip().endswith("█")  # the newest sample at the right edge


async def test_names_get_the_free_width_at_120_columns(app: Any) -> None:
    async with app.run_test(size=(120, 40)) as pilot:
        name = "a-rather-long-file-name-of-forty-chars.bin"
        feed(app, JobQueued(1, f"/elsewhere/{name}", MiB))
        await pilot.pause()
        shown = row_text(app, 1)[1]
        assert len(shown) >= 30 and shown.endswith(".bin")


async def test_small_wording_fixes(app: Any) -> None:
    async with app.run_test(size=(40, 12)) as pilot:
        await pilot.pause()
        # no stray key at the right edge of the footer
        assert screen_text(app).splitlines()[-1].rstrip().endswith("palette")
        # one "Keys"/"Help" entry each in the command palette
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert len(titles) == len(set(titles))
        app.dashboard.query_one("#scan").show(ScanProgress(1, 10, 1, 0, 0, done=True))
        assert "scanned 1 file," in str(app.dashboard.query_one("#scan").render())
        assert "1 duplicate " in str(app.dashboard.query_one("#scan").render())
        # tree guides keep off the border
        browser = app.dashboard.browser
        assert browser.styles.padding.left >= 1


def test_a_finished_job_shows_no_attempts_zero() -> None:
    from rich.console import Console

    details = JobDetails(1, "/a.bin", 10, "done", "u1", None, 10, 10, "m", 0, 0, None)
    console = Console(width=100, record=True)
    console.print(details_table(details))
    text = console.export_text()
    assert "Attempts" not in text and "Retries" in text


async def test_marked_folders_show_their_size_as_it_is_counted(app: Any, data_dir: Path) -> None:
    async with app.run_test(size=(120, 40)) as pilot:
        browser = app.dashboard.browser
        await wait_for(pilot, lambda: len(browser.root.children) >= 5)
        await pilot.press("space", "space")  # images/ (90,000 bytes) and notes/ (80 bytes)
        await wait_for(pilot, lambda: "counting" not in str(browser.border_subtitle))
        assert str(browser.border_subtitle) == "2 marked, 88.0 KiB"


def test_folder_size_is_bounded_and_cancellable(tmp_path: Path) -> None:
    from synapse_tui.ui.folder_sizes import folder_size

    for n in range(30):
        sub = tmp_path / f"d{n % 3}"
        sub.mkdir(exist_ok=True)
        (sub / f"f{n}").write_bytes(b"x" * 100)
    (tmp_path / "loop").symlink_to(tmp_path)  # a link back up: not walked
    reports: list[int] = []
    assert folder_size(bytes(tmp_path), lambda t, d: reports.append(t), lambda: False) == (
        3000,
        True,
    )
    total, complete = folder_size(bytes(tmp_path), lambda t, d: None, lambda: False, 10) or (0, 1)
    assert not complete and total < 3000  # stopped at 10 entries: a lower bound
    assert folder_size(bytes(tmp_path), lambda t, d: None, lambda: True) is None
