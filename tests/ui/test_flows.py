"""Pause/resume, cancel, drain, retry after a failure, quit and resume on the next launch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from synapse_tui.ui.screens.confirm import ConfirmScreen
from synapse_tui.ui.widgets.file_browser import FileBrowser
from tests.ui.conftest import Backend, settings_for, wait_for

SLOW = 128 * 1024  # bytes/second: a 384 KiB file takes about three seconds


def counts(app: Any) -> dict[str, int]:
    return app.dashboard.queue.counts()


def row(app: Any, index: int = 0) -> Any:
    return list(app.dashboard.queue.rows_by_id.values())[index]


async def go_to(pilot: Any, browser: FileBrowser, name: bytes) -> None:
    """Move the cursor with `j` until `name` is highlighted."""
    await wait_for(pilot, lambda: bool(browser.root.children))
    for _ in range(50):
        entry = browser.highlighted
        if entry is not None and entry.name == name:
            return
        await pilot.press("j")
    raise AssertionError(f"{name!r} not found in the browser")


def big_files(folder: Path, *names: str, size: int = 384 * 1024) -> None:
    for n, name in enumerate(names):
        (folder / name).write_bytes(bytes([n + 1]) * size)


async def test_pause_and_resume(app_factory: Any, backend: Backend, data_dir: Path) -> None:
    big_files(data_dir, "slow.bin")
    app = app_factory(settings=settings_for(backend, bwlimit=float(SLOW)))
    async with app.run_test(size=(120, 40)) as pilot:
        await go_to(pilot, app.dashboard.browser, b"slow.bin")
        await pilot.press("u")
        await wait_for(pilot, lambda: counts(app).get("uploading") == 1 and row(app).sent > 0)
        await pilot.press("tab")
        assert app.focused is app.dashboard.queue
        await pilot.press("p")
        await wait_for(pilot, lambda: counts(app).get("paused") == 1)
        await pilot.press("p")
        await wait_for(pilot, lambda: counts(app).get("done") == 1, timeout=30)
        assert backend.stored() == [b"\x01" * 384 * 1024]
        await app.shutdown_engine()


async def test_pause_all_and_cancel(app_factory: Any, backend: Backend, data_dir: Path) -> None:
    big_files(data_dir, "slow1.bin", "slow2.bin")
    app = app_factory(settings=settings_for(backend, bwlimit=float(SLOW)))
    async with app.run_test(size=(120, 40)) as pilot:
        browser = app.dashboard.browser
        await go_to(pilot, browser, b"slow1.bin")
        await pilot.press("space", "space", "u")
        await wait_for(pilot, lambda: len(app.dashboard.queue.rows_by_id) == 2)
        await pilot.press("P")
        await wait_for(pilot, lambda: counts(app).get("paused") == 2)
        await pilot.press("tab")
        asks = app.dashboard.queue.highlighted_job.sent > 0  # it sent data: `x` asks first
        await pilot.press("x")  # cancel the first job
        if asks:
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            await pilot.press("y")
        await wait_for(pilot, lambda: counts(app).get("cancelled") == 1)
        await pilot.press("P")  # resume all: the other finishes
        await wait_for(pilot, lambda: counts(app).get("done") == 1, timeout=30)
        assert counts(app).get("cancelled") == 1
        await app.shutdown_engine()


async def test_drain(app_factory: Any, backend: Backend, data_dir: Path) -> None:
    big_files(data_dir, "d1.bin", "d2.bin", "d3.bin", size=256 * 1024)
    settings = settings_for(backend, bwlimit=float(SLOW), concurrency=1)
    app = app_factory(settings=settings)
    async with app.run_test(size=(120, 40)) as pilot:
        await go_to(pilot, app.dashboard.browser, b"d1.bin")
        await pilot.press("space", "space", "space", "u")
        await wait_for(pilot, lambda: counts(app).get("uploading") == 1)
        await pilot.press("d")
        await wait_for(pilot, lambda: counts(app).get("done") == 1, timeout=30)
        await pilot.pause(0.6)  # the drained engine starts nothing new
        assert counts(app).get("queued") == 2
        assert not counts(app).get("uploading")
        assert "DRAINING" in app.dashboard.counts.text()
        await pilot.press("d")  # drain off: the rest runs
        app.dashboard.set_bandwidth(None)
        await wait_for(pilot, lambda: counts(app).get("done") == 3, timeout=30)
        await app.shutdown_engine()


async def test_retry_after_injected_failure(
    app_factory: Any, backend: Backend, data_dir: Path
) -> None:
    backend.restart(max_bytes=1000)  # beta.bin (76800 bytes) is refused with a 413
    app = app_factory()
    async with app.run_test(size=(120, 40)) as pilot:
        await go_to(pilot, app.dashboard.browser, b"beta.bin")
        await pilot.press("u")
        await wait_for(pilot, lambda: counts(app).get("failed") == 1)
        log = "\n".join(app.dashboard.log_widget.lines_written)
        assert "exceeds the limit" in log  # the server's own message
        await pilot.press("tab", "enter")  # the details show the error with its time
        await wait_for(pilot, lambda: app.screen.__class__.__name__ == "JobDetailsScreen")
        details = app.screen.details
        assert details.state == "failed"
        assert details.errors and "exceeds the limit" in details.errors[0][1]
        await pilot.press("escape")
        backend.restart(max_bytes=None)  # same root, same port
        await pilot.press("r")
        await wait_for(pilot, lambda: counts(app).get("done") == 1)
        assert backend.stored() == [bytes(range(256)) * 300]
        await app.shutdown_engine()


async def test_quit_asks_then_resumes_next_launch(
    app_factory: Any, backend: Backend, data_dir: Path
) -> None:
    big_files(data_dir, "resume.bin", size=512 * 1024)
    settings = settings_for(backend, bwlimit=float(SLOW / 2))  # 8 s: still running at `q`
    app = app_factory(settings=settings)
    async with app.run_test(size=(120, 40)) as pilot:
        await go_to(pilot, app.dashboard.browser, b"resume.bin")
        await pilot.press("u")
        await wait_for(pilot, lambda: counts(app).get("uploading") == 1 and row(app).sent > 0)
        await pilot.press("q")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("n")  # stay
        await wait_for(pilot, lambda: not isinstance(app.screen, ConfirmScreen))
        assert app.is_running
        await pilot.press("q")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_for(pilot, lambda: not app.is_running)
    assert app.bridge is None
    # next launch: the unfinished job is back in the queue and finishes
    again = app_factory(settings=settings_for(backend))
    async with again.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: counts(again).get("done") == 1, timeout=30)
        log = "\n".join(again.dashboard.log_widget.lines_written)
        assert "resumed" in log
        assert backend.stored() == [b"\x01" * 512 * 1024]
        await again.shutdown_engine()


async def test_quit_without_uploads_does_not_ask(app_factory: Any) -> None:
    app = app_factory()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.bridge is not None)
        await pilot.press("q")
        await wait_for(pilot, lambda: not app.is_running)


async def test_concurrency_and_bandwidth_keys(app_factory: Any) -> None:
    app = app_factory()
    async with app.run_test(size=(120, 40)) as pilot:
        # `>` / `<` from any pane (`+` / `-` mark by glob in the browser)
        await pilot.press("tab", "greater_than_sign", "greater_than_sign", "less_than_sign")
        assert app.dashboard.counts.concurrency == 5
        await pilot.press("b")
        await wait_for(pilot, lambda: app.screen.__class__.__name__ == "PromptScreen")
        app.screen.query_one("Input").value = ""
        await pilot.press(*"20M", "enter")
        await wait_for(pilot, lambda: app.dashboard.counts.bwlimit == 20 * 1024 * 1024)
        assert app.bridge is not None
        limit = await app.bridge.ask(lambda: app.bridge.manager.options.bwlimit)
        assert limit == 20 * 1024 * 1024
        conc = await app.bridge.ask(lambda: app.bridge.manager.gate.capacity)
        assert conc == 5
        await app.shutdown_engine()


async def test_keys_answer_while_eight_uploads_run(
    app_factory: Any, backend: Backend, data_dir: Path
) -> None:
    names = [f"p{n}.bin" for n in range(8)]
    big_files(data_dir, *names, size=512 * 1024)  # 8 s at this limit
    settings = settings_for(backend, bwlimit=float(4 * SLOW), concurrency=8)
    app = app_factory(settings=settings, progress_interval=0.25)  # the real throttle
    async with app.run_test(size=(120, 40)) as pilot:
        browser = app.dashboard.browser
        await go_to(pilot, browser, b"p0.bin")

        async def ten_keys() -> None:
            line = browser.cursor_line
            for step in range(10):
                await pilot.press("j" if step % 2 else "k")
                assert browser.cursor_line == (line - 1 if step % 2 == 0 else line)

        await ten_keys()
        await pilot.press(*["space"] * 8, "u")
        await wait_for(pilot, lambda: counts(app).get("uploading") == 8)
        await pilot.press("k")
        # Every key is handled, in order, while eight uploads run; how fast is measured by
        # the benchmark suite (target 6), not asserted here.
        await ten_keys()
        assert counts(app).get("uploading") == 8
        await app.shutdown_engine()
