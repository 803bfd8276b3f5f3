"""Snapshots (pytest-textual-snapshot) of the deterministic main states, at 80x24 and 120x40.

`frozen=True` makes the app deterministic: no clock in the log, no live rates, the folder
shown by its name only. Update with `pytest tests/ui --snapshot-update` after a reviewed change.
"""

from __future__ import annotations

from typing import Any

import pytest

from synapse_tui.config import Settings
from synapse_tui.engine.protocol import Credentials
from tests.ui.conftest import Backend, settings_for, wait_for

SIZES = [(80, 24), (120, 40)]
THEMES = ["synapse-dark", "synapse-light", "synapse-high-contrast", "synapse-16color"]


async def loaded(pilot: Any) -> None:
    browser = pilot.app.dashboard.browser
    await wait_for(pilot, lambda: len(browser.root.children) >= 5)
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_start(snap_compare: Any, app_factory: Any, size: tuple[int, int]) -> None:
    app = app_factory(frozen=True, start_engine=False)
    assert snap_compare(app, terminal_size=size, run_before=loaded)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_marked(snap_compare: Any, app_factory: Any, size: tuple[int, int]) -> None:
    async def mark(pilot: Any) -> None:
        await loaded(pilot)
        await pilot.press("enter")  # open images/
        await wait_for(pilot, lambda: pilot.app.dashboard.browser.root.children[0].children)
        await pilot.press("j", "space", "j", "j", "space", "space")

    app = app_factory(frozen=True, start_engine=False)
    assert snap_compare(app, terminal_size=size, run_before=mark)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_finished_jobs(
    snap_compare: Any, app_factory: Any, backend: Backend, size: tuple[int, int]
) -> None:
    async def upload(pilot: Any) -> None:
        app = pilot.app
        await loaded(pilot)
        await pilot.press("j", "j", "space", "space", "space", "u")  # the three top files
        await wait_for(pilot, lambda: app.dashboard.queue.counts().get("done") == 3)
        await wait_for(pilot, lambda: len(app.dashboard.browser.uploaded) == 3)
        await wait_for(pilot, lambda: "scanned" in str(app.dashboard.query_one("#scan").render()))
        await wait_for(pilot, lambda: len(app.dashboard.log_widget.lines_written) >= 4)
        await pilot.press("2" if size[0] < 110 else "tab")
        await pilot.pause(0.2)

    # one at a time: the log lists them in a stable order
    app = app_factory(frozen=True, settings=settings_for(backend, concurrency=1))
    assert snap_compare(app, terminal_size=size, run_before=upload)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_help(snap_compare: Any, app_factory: Any, size: tuple[int, int]) -> None:
    app = app_factory(frozen=True, start_engine=False)
    assert snap_compare(app, terminal_size=size, press=["question_mark"])


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_settings_masked(snap_compare: Any, app_factory: Any, size: tuple[int, int]) -> None:
    async def typed(pilot: Any) -> None:
        await pilot.press("s")
        await pilot.pause()
        for field in pilot.app.screen.query("Input"):
            field.cursor_blink = False
        await pilot.press("tab", *"hunter2-secret-token")

    settings = Settings(
        host="https://synapse.example.org", credentials=Credentials(access_token="old-token")
    )
    app = app_factory(frozen=True, start_engine=False, settings=settings)
    assert snap_compare(app, terminal_size=size, run_before=typed)


@pytest.mark.parametrize("theme", THEMES)
def test_theme(snap_compare: Any, app_factory: Any, theme: str) -> None:
    async def themed(pilot: Any) -> None:
        pilot.app.theme = theme
        await loaded(pilot)
        await pilot.press("j", "j", "space")

    app = app_factory(frozen=True, start_engine=False)
    assert snap_compare(app, terminal_size=(120, 40), run_before=themed)
