"""A folder too large to list whole is listed under the rule (filter, hidden files) in
force when it is shown: a folder collapsed while the rule changed is listed again when
expanded, and of two listings under different rules the later one's stands."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from synapse_tui.ui.listing import Entry
from synapse_tui.ui.widgets.file_browser import FileBrowser
from tests.ui.conftest import wait_for
from tests.ui.large_folder import big_root, count_loaded, held_listing, opened
from tests.ui.test_browser import answer


def _names(browser: FileBrowser) -> list[bytes]:
    return [c.data.name for c in browser.root.children[0].children if c.data]


async def _expanded_again(pilot: Any, browser: FileBrowser) -> list[bytes]:
    """many/ expanded again (under the filter now): the names it shows once listed."""
    browser.move_cursor(browser.root.children[0])
    await pilot.press("l")
    await wait_for(pilot, lambda: browser.root.children[0].is_expanded)
    await wait_for(pilot, lambda: not browser.listing)
    await pilot.pause()
    return _names(browser)


async def test_a_large_folder_collapsed_while_filtered_is_listed_again(
    app_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = big_root(tmp_path, monkeypatch)
    async with opened(app_factory, root) as pilot:  # many/: its first 20, and the line
        browser: FileBrowser = pilot.app.dashboard.browser
        many = browser.root.children[0]
        await pilot.press("h")  # collapsed
        await wait_for(pilot, lambda: not many.is_expanded)
        await pilot.press("slash")
        await answer(pilot, "*0029?.jpg")  # matches none of the 20 listed
        await wait_for(pilot, lambda: not browser.listing)
        assert await _expanded_again(pilot, browser) == [
            b"img_%06d.jpg" % i for i in range(290, 300)
        ]


async def test_a_listing_under_an_older_rule_finishing_last_is_dropped(
    app_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = big_root(tmp_path, monkeypatch)
    many_path = os.fsencode(root / "many")
    # The listing under the filter (the first of many/ that keeps no img_00000*) waits.
    hold, held = held_listing(
        monkeypatch,
        lambda path, keep: (
            path == many_path and keep is not None and not keep(Entry(b"/img_000000.jpg", False, 1))
        ),
    )
    loaded = count_loaded(monkeypatch)
    async with opened(app_factory, root) as pilot:
        browser: FileBrowser = pilot.app.dashboard.browser
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
    root = big_root(tmp_path, monkeypatch)
    many_path = os.fsencode(root / "many")
    calls: list[bytes] = []

    def second_of_many(path: bytes, keep: Any) -> bool:  # f5's listing (no filter yet)
        if path == many_path:
            calls.append(path)
        return path == many_path and len(calls) == 2

    hold, held = held_listing(monkeypatch, second_of_many)
    loaded = count_loaded(monkeypatch)
    async with opened(app_factory, root) as pilot:
        browser: FileBrowser = pilot.app.dashboard.browser
        await pilot.press("f5")  # read again: held
        await wait_for(pilot, lambda: bool(held))
        browser.move_cursor(browser.root.children[0])
        await pilot.press("h")  # collapsed
        await wait_for(pilot, lambda: not browser.root.children[0].is_expanded)
        await pilot.press("slash")
        await answer(pilot, "*0029?.jpg")
        hold.set()  # f5's listing, under no filter, lands now
        await wait_for(pilot, lambda: loaded.count(many_path) == 2)
        assert await _expanded_again(pilot, browser) == [
            b"img_%06d.jpg" % i for i in range(290, 300)
        ]
