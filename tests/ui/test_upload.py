"""Browse, mark, queue and upload to completion against the embedded backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from synapse_tui.ui.screens.dashboard import DashboardScreen
from synapse_tui.ui.widgets.file_browser import FileBrowser
from tests.ui.conftest import Backend, wait_for


def states(app: Any) -> dict[str, int]:
    return app.dashboard.queue.counts()


async def test_start_focus_on_first_entry(app_factory: Any) -> None:
    app = app_factory()
    async with app.run_test(size=(120, 40)) as pilot:
        browser = app.dashboard.browser
        await wait_for(pilot, lambda: browser.root.children)
        assert isinstance(app.screen, DashboardScreen)
        assert app.focused is browser
        assert browser.cursor_line == 0
        assert browser.highlighted is not None
        assert browser.highlighted.path.endswith(b"/images")  # folders first
        await app.shutdown_engine()


async def test_browse_mark_queue_upload(app_factory: Any, backend: Backend, data_dir: Path) -> None:
    app = app_factory()
    async with app.run_test(size=(120, 40)) as pilot:
        browser: FileBrowser = app.dashboard.browser
        await wait_for(pilot, lambda: len(browser.root.children) >= 5)
        # images/, notes/, alpha.txt, beta.bin, gamma.csv (.hidden is hidden)
        names = [n.data.path.rsplit(b"/", 1)[1] for n in browser.root.children if n.data]
        assert names == [b"images", b"notes", b"alpha.txt", b"beta.bin", b"gamma.csv"]
        await pilot.press("enter")  # open images/
        await wait_for(pilot, lambda: len(browser.root.children[0].children) == 2)
        await pilot.press("j", "space")  # mark images/one.tif
        await pilot.press("j", "j", "space")  # space moved down: skip two.tif, notes/
        assert browser.marked == {
            bytes(data_dir / "images" / "one.tif"),
            bytes(data_dir / "alpha.txt"),
        }
        await pilot.press(*["k"] * 5)
        assert browser.cursor_line == 0
        await pilot.press("enter")  # close images/: marks persist
        assert len(browser.marked) == 2
        await pilot.press("u")
        await wait_for(pilot, lambda: states(app).get("done") == 2)
        assert browser.marked == set()
        stored = backend.stored()
        assert sorted(stored) == sorted([b"\x01" * 40_000, b"a" * 1000])
        # the ledger flags uploaded files in the browser
        await wait_for(pilot, lambda: bytes(data_dir / "alpha.txt") in browser.uploaded)
        await app.shutdown_engine()


async def test_queue_highlighted_folder_with_scan(app_factory: Any, backend: Backend) -> None:
    app = app_factory()
    async with app.run_test(size=(120, 40)) as pilot:
        browser = app.dashboard.browser
        await wait_for(pilot, lambda: browser.root.children)
        await pilot.press("u")  # nothing marked: queues the highlighted folder (images/)
        await wait_for(pilot, lambda: states(app).get("done") == 2)
        scan = app.dashboard.query_one("#scan")
        assert "2 files" in str(scan.render())
        assert len(backend.stored()) == 2
        await app.shutdown_engine()
