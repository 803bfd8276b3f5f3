"""`+`/`-` (mark or unmark by glob) in a folder too large to list whole act on the entries
listed, and say so: how many more the folder holds, and how to reach them. A glob that
matches only within the listed entries must not read as "every match in the folder"."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from synapse_tui.ui.widgets.file_browser import FileBrowser
from tests.ui.conftest import wait_for
from tests.ui.large_folder import LIMIT, MANY, big_root, opened
from tests.ui.test_browser import answer


def _messages(app: Any) -> list[tuple[str, str]]:
    return [(n.severity, n.message) for n in app._notifications]


async def test_a_glob_in_a_folder_listed_in_part_says_what_it_left(
    app_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = big_root(tmp_path, monkeypatch)
    async with opened(app_factory, root) as pilot:
        app = pilot.app
        browser: FileBrowser = app.dashboard.browser
        browser.move_cursor(browser.root.children[0].children[0])  # a file in many/
        app.clear_notifications()
        await pilot.press("plus")
        await answer(pilot, "*.jpg")
        assert len(browser.marked) == LIMIT  # the listed ones
        [(severity, message)] = _messages(app)
        assert severity == "warning"
        assert f"marked {LIMIT} of the entries listed" in message
        assert f"{MANY - LIMIT:,} more" in message and "many" in message

        app.clear_notifications()
        await pilot.press("minus")
        await answer(pilot, "*.jpg")
        assert browser.marked == set()
        [(severity, message)] = _messages(app)
        assert severity == "warning" and f"unmarked {LIMIT} of the entries listed" in message


async def test_a_glob_in_a_folder_listed_whole_says_only_what_it_did(
    app_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = big_root(tmp_path, monkeypatch)
    (root / "small").mkdir()
    for name in ("a.jpg", "b.jpg", "c.txt"):
        (root / "small" / name).write_bytes(b"x")
    async with opened(app_factory, root, entries=2) as pilot:
        app = pilot.app
        browser: FileBrowser = app.dashboard.browser
        small = browser.root.children[1]
        browser.move_cursor(small)
        await pilot.press("l")
        await wait_for(pilot, lambda: len(small.children) == 3)
        browser.move_cursor(small.children[0])
        app.clear_notifications()
        await pilot.press("plus")
        await answer(pilot, "*.jpg")
        assert len(browser.marked) == 2
        assert _messages(app) == [("information", "marked 2 entries matching *.jpg")]
