"""The file browser by keyboard: marks, glob, invert, mark all, hidden files, filter."""

from __future__ import annotations

from typing import Any

from synapse_tui.ui.screens.prompt import PromptScreen
from synapse_tui.ui.widgets.file_browser import FileBrowser
from tests.ui.conftest import wait_for


def names(browser: FileBrowser) -> list[bytes]:
    return [n.data.name for n in browser.root.children if n.data is not None]


def marked(browser: FileBrowser) -> set[bytes]:
    return {p.rsplit(b"/", 1)[1] for p in browser.marked}


async def ready(app: Any, pilot: Any) -> FileBrowser:
    browser = app.dashboard.browser
    await wait_for(pilot, lambda: len(browser.root.children) >= 5)
    return browser


async def answer(pilot: Any, text: str) -> None:
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, PromptScreen))
    pilot.app.screen.query_one("Input").value = ""
    await pilot.press(*text, "enter")
    await wait_for(pilot, lambda: not isinstance(pilot.app.screen, PromptScreen))


async def test_marks_glob_invert_all(app_factory: Any) -> None:
    app = app_factory(start_engine=False)
    async with app.run_test(size=(80, 24)) as pilot:
        browser = await ready(app, pilot)
        await pilot.press("plus")
        await answer(pilot, "*.bin")
        assert marked(browser) == {b"beta.bin"}
        await pilot.press("asterisk")  # invert in this folder
        assert marked(browser) == {b"images", b"notes", b"alpha.txt", b"gamma.csv"}
        await pilot.press("minus")
        await answer(pilot, "*s")
        assert marked(browser) == {b"alpha.txt", b"gamma.csv"}
        await pilot.press("ctrl+a")
        assert len(browser.marked) == 5
        await pilot.press("ctrl+a")  # all marked already: unmark all
        assert browser.marked == set()
        await pilot.press("space")
        assert marked(browser) == {b"images"}
        assert browser.cursor_line == 1  # space moves down, like yazi
        assert "1 marked" in str(browser.border_subtitle)
        await pilot.press("escape")
        assert browser.marked == set()
        await pilot.press("v", "j", "j", "v")  # a range of three lines
        assert marked(browser) == {b"notes", b"alpha.txt", b"beta.bin"}


async def test_hidden_toggle_and_filter(app_factory: Any) -> None:
    app = app_factory(start_engine=False)
    async with app.run_test(size=(80, 24)) as pilot:
        browser = await ready(app, pilot)
        assert b".hidden" not in names(browser)
        await pilot.press("full_stop")
        await wait_for(pilot, lambda: b".hidden" in names(browser))
        await pilot.press("full_stop")
        await wait_for(pilot, lambda: b".hidden" not in names(browser))
        await pilot.press("slash")
        await answer(pilot, "alp")
        await wait_for(pilot, lambda: names(browser) == [b"images", b"notes", b"alpha.txt"])
        await pilot.press("slash")
        await answer(pilot, "*.csv")
        await wait_for(pilot, lambda: names(browser) == [b"images", b"notes", b"gamma.csv"])
        await pilot.press("escape")  # clears the filter
        await wait_for(pilot, lambda: len(names(browser)) == 5)


async def test_marks_persist_across_folders(app_factory: Any, data_dir: Any) -> None:
    app = app_factory(start_engine=False)
    async with app.run_test(size=(80, 24)) as pilot:
        browser = await ready(app, pilot)
        await pilot.press("l")  # expand images/
        await wait_for(pilot, lambda: len(browser.root.children[0].children) == 2)
        await pilot.press("l", "space")  # into images/, mark one.tif
        await pilot.press("h", "h")  # back to images/, collapse it
        assert not browser.root.children[0].is_expanded
        await pilot.press("j", "enter")  # open notes/
        await wait_for(pilot, lambda: len(browser.root.children[1].children) == 1)
        await pilot.press("j", "space")
        assert marked(browser) == {b"one.tif", b"readme.md"}
        assert browser.targets() == sorted(browser.marked)


async def test_no_color(monkeypatch: Any, app_factory: Any) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    app = app_factory(start_engine=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert app.no_color
