"""A folder too large to list whole is listed under the rule (filter, hidden files) in
force when it is shown: a folder collapsed while the rule changed is listed again when
expanded, and of two listings under different rules the later one's stands."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest

from synapse_tui.ui import listing
from synapse_tui.ui.listing import Entry, Folder
from synapse_tui.ui.widgets import file_browser
from synapse_tui.ui.widgets.file_browser import FileBrowser
from tests.ui.conftest import wait_for
from tests.ui.test_browser import answer
from tests.ui.test_browser_large_folder import _fill


def _names(browser: FileBrowser) -> list[bytes]:
    return [c.data.name for c in browser.root.children[0].children if c.data]


async def test_a_large_folder_collapsed_while_filtered_is_listed_again(
    app_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(listing, "LIMIT", 20)
    root = tmp_path / "top"
    _fill(root / "many", 300)
    app = app_factory(start_engine=False, directory=root)
    async with app.run_test(size=(80, 24)) as pilot:
        browser: FileBrowser = app.dashboard.browser
        await wait_for(pilot, lambda: len(browser.root.children) == 1)
        many = browser.root.children[0]
        await pilot.press("l")  # expand many/: its first 20, and the line
        await wait_for(pilot, lambda: len(many.children) == 21)
        await pilot.press("h")  # collapsed
        await wait_for(pilot, lambda: not many.is_expanded)
        await pilot.press("slash")
        await answer(pilot, "*0029?.jpg")  # matches none of the 20 listed
        await wait_for(pilot, lambda: not browser.listing)
        browser.move_cursor(browser.root.children[0])
        await pilot.press("l")  # expanded again, under the filter
        await wait_for(pilot, lambda: browser.root.children[0].is_expanded)
        await wait_for(pilot, lambda: not browser.listing)
        await pilot.pause()
        assert _names(browser) == [b"img_%06d.jpg" % i for i in range(290, 300)]


async def test_a_listing_under_an_older_rule_finishing_last_is_dropped(
    app_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(listing, "LIMIT", 20)
    root = tmp_path / "top"
    _fill(root / "many", 300)
    many_path = os.fsencode(root / "many")
    real = file_browser.list_folder
    hold = threading.Event()
    held: list[bool] = []

    def list_folder(path: bytes, keep: Any = None, limit: int | None = None) -> Folder:
        folder = real(path, keep, limit)
        # The listing under the filter (the first of many/ that keeps no img_00000*) waits.
        if path == many_path and keep is not None and not keep(Entry(b"/img_000000.jpg", False, 1)):
            held.append(True)
            assert hold.wait(20)
        return folder

    monkeypatch.setattr(file_browser, "list_folder", list_folder)
    loaded: list[bytes] = []  # the folders whose listing reached the UI (stale ones too)
    real_loaded = FileBrowser._loaded

    def count_loaded(browser: FileBrowser, path: bytes, *args: Any) -> None:
        real_loaded(browser, path, *args)
        loaded.append(path)

    monkeypatch.setattr(FileBrowser, "_loaded", count_loaded)
    app = app_factory(start_engine=False, directory=root)
    async with app.run_test(size=(80, 24)) as pilot:
        browser: FileBrowser = app.dashboard.browser
        await wait_for(pilot, lambda: len(browser.root.children) == 1)
        many = browser.root.children[0]
        await pilot.press("l")
        await wait_for(pilot, lambda: len(many.children) == 21)
        await pilot.press("slash")
        await answer(pilot, "*0029?.jpg")  # listed again under the filter: held
        await wait_for(pilot, lambda: bool(held))
        await pilot.press("escape")  # the filter cleared: listed again, whole rule
        await wait_for(pilot, lambda: _names(browser)[:1] == [b"img_000000.jpg"])
        hold.set()  # the filtered listing ends last
        await wait_for(pilot, lambda: loaded.count(many_path) == 3)  # expand, filter, esc
        await pilot.pause()
        assert not browser.listing
        assert not browser.name_filter
        assert _names(browser) == [b"img_%06d.jpg" % i for i in range(20)]
        assert "280 more" in str(browser.root.children[0].children[-1].label)


async def test_a_reload_landing_after_the_rule_changed_on_a_collapsed_folder_is_dropped(
    app_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(listing, "LIMIT", 20)
    root = tmp_path / "top"
    _fill(root / "many", 300)
    many_path = os.fsencode(root / "many")
    real = file_browser.list_folder
    hold = threading.Event()
    calls: list[int] = []

    def list_folder(path: bytes, keep: Any = None, limit: int | None = None) -> Folder:
        folder = real(path, keep, limit)
        if path == many_path:
            calls.append(1)
            if len(calls) == 2:  # f5's listing (no filter yet) waits
                assert hold.wait(20)
        return folder

    monkeypatch.setattr(file_browser, "list_folder", list_folder)
    loaded: list[bytes] = []
    real_loaded = FileBrowser._loaded

    def count_loaded(browser: FileBrowser, path: bytes, *args: Any) -> None:
        real_loaded(browser, path, *args)
        loaded.append(path)

    monkeypatch.setattr(FileBrowser, "_loaded", count_loaded)
    app = app_factory(start_engine=False, directory=root)
    async with app.run_test(size=(80, 24)) as pilot:
        browser: FileBrowser = app.dashboard.browser
        await wait_for(pilot, lambda: len(browser.root.children) == 1)
        many = browser.root.children[0]
        await pilot.press("l")
        await wait_for(pilot, lambda: len(many.children) == 21)
        await pilot.press("f5")  # read again: held
        await wait_for(pilot, lambda: len(calls) == 2)
        browser.move_cursor(browser.root.children[0])
        await pilot.press("h")  # collapsed
        await wait_for(pilot, lambda: not browser.root.children[0].is_expanded)
        await pilot.press("slash")
        await answer(pilot, "*0029?.jpg")
        hold.set()  # f5's listing, under no filter, lands now
        await wait_for(pilot, lambda: loaded.count(many_path) == 2)
        browser.move_cursor(browser.root.children[0])
        await pilot.press("l")  # expanded again, under the filter
        await wait_for(pilot, lambda: browser.root.children[0].is_expanded)
        await wait_for(pilot, lambda: not browser.listing)
        await pilot.pause()
        assert _names(browser) == [b"img_%06d.jpg" % i for i in range(290, 300)]
