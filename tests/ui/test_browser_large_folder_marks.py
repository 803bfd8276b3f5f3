"""ctrl+a in a folder too large to list whole marks what the filter shows when the filter
lists all it keeps, and never the whole folder past a filter (that would queue the files
the filter left out)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from synapse_tui.ui.widgets.file_browser import FileBrowser
from tests.ui.conftest import wait_for
from tests.ui.large_folder import big_root, opened
from tests.ui.test_browser import answer


async def test_ctrl_a_in_a_filtered_large_folder_marks_what_the_filter_shows(
    app_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = big_root(tmp_path, monkeypatch)
    async with opened(app_factory, root) as pilot:
        browser: FileBrowser = pilot.app.dashboard.browser

        def shown() -> list[bytes]:
            return [c.data.path for c in browser.root.children[0].children if c.data]

        await pilot.press("slash")
        await answer(pilot, "*0029?.jpg")  # ten files, all listed: no "… more" line
        wanted = [os.fsencode(root / "many" / f"img_{i:06d}.jpg") for i in range(290, 300)]
        await wait_for(pilot, lambda: shown() == wanted)
        browser.move_cursor(browser.root.children[0].children[0])  # a file in many/
        await pilot.press("ctrl+a")
        assert browser.marked == set(wanted)  # not the folder: its 290 other files
        await pilot.press("ctrl+a")
        assert browser.marked == set()

        await pilot.press("slash")
        await answer(pilot, "*1?.jpg")  # 30 match: 20 listed and a line for 10 more
        await wait_for(
            pilot, lambda: len(shown()) == 20 and browser.root.children[0].children[-1].data is None
        )
        browser.move_cursor(browser.root.children[0].children[0])  # a file in many/
        await pilot.press("ctrl+a")
        assert browser.marked == set()  # 270 files the filter hides
