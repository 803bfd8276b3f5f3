"""Layout at 80x24, help, settings (masked, 0600), job details, palette, log escaping."""

from __future__ import annotations

import json
import os
import stat
from typing import Any

from synapse_tui.config import own_config_file
from synapse_tui.engine.events import JobFailed, LogMessage
from synapse_tui.ui.app import COMMANDS
from synapse_tui.ui.screens.help import HelpScreen
from synapse_tui.ui.screens.settings import SettingsScreen
from tests.ui.conftest import wait_for


async def test_narrow_layout_tabs_between_panes(app_factory: Any) -> None:
    app = app_factory()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.dashboard
        assert screen.has_class("-narrow")
        assert screen.query_one("#tabs").display
        seen = []
        for _ in range(4):
            visible = [
                p
                for p in ("browser", "queue", "progress", "log")
                if screen.query_one(f"#{p}").display
            ]
            assert visible == [screen.current_pane]
            assert app.focused is not None and app.focused.id == screen.current_pane
            seen.append(screen.current_pane)
            await pilot.press("tab")
        assert seen == ["browser", "queue", "progress", "log"]
        assert screen.current_pane == "browser"
        await pilot.press("shift+tab")
        assert screen.current_pane == "log"
        await pilot.press("2")
        assert app.focused is screen.queue
        await app.shutdown_engine()


async def test_wide_layout_shows_every_pane(app_factory: Any) -> None:
    app = app_factory()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.dashboard
        await pilot.pause()
        assert screen.has_class("-wide")
        assert not screen.query_one("#tabs").display
        for pane in ("browser", "queue", "progress", "log"):
            widget = screen.query_one(f"#{pane}")
            assert widget.display and widget.region.width > 0
        await pilot.press("tab")
        assert app.focused is screen.queue
        await app.shutdown_engine()


async def test_help_lists_every_contract_key(app_factory: Any) -> None:
    app = app_factory()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        from synapse_tui.ui.screens.help import KEYS

        keys = " ".join(k for _, rows in KEYS for k, _ in rows)
        for key in (
            "tab",
            "space",
            "u",
            "p",
            "P",
            "x",
            "r",
            "d",
            "+",
            "b",
            "t",
            "?",
            "q",
            "/",
            "*",
            "ctrl+a",
            "enter",
        ):
            assert key in keys
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
        await app.shutdown_engine()


async def test_settings_saves_private_file_and_masks_token(app_factory: Any) -> None:
    app = app_factory()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("s")
        await wait_for(pilot, lambda: isinstance(app.screen, SettingsScreen))
        token_input = app.screen.query_one("#token")
        assert token_input.password
        assert token_input.value == ""  # the current token is never shown back
        app.screen.query_one("#host").value = ""
        await pilot.press(*"https://h.org", "tab", *"s3cret-tok", "tab", *"acme")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: not isinstance(app.screen, SettingsScreen))
        path = own_config_file()
        data = json.loads(path.read_text())
        assert data["host"] == "https://h.org"
        assert data["access_token"] == "s3cret-tok"
        assert data["tenant"] == "acme"
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        await app.shutdown_engine()


async def test_settings_rejects_bad_host(app_factory: Any) -> None:
    app = app_factory()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("s")
        await wait_for(pilot, lambda: isinstance(app.screen, SettingsScreen))
        app.screen.query_one("#host").value = ""
        await pilot.press(*"ftp://nope", "ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, SettingsScreen)
        assert not own_config_file().exists()
        await pilot.press("escape")
        await app.shutdown_engine()


async def test_palette_has_every_action(app_factory: Any) -> None:
    app = app_factory()
    async with app.run_test(size=(120, 40)) as pilot:
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for title, _, _ in COMMANDS:
            assert title in titles
        for title in ("Settings", "Next theme", "Keys", "Quit dashboard"):
            assert title in titles
        await pilot.press("ctrl+p")
        await pilot.press(*"Files pane")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.focused is app.dashboard.browser)
        await app.shutdown_engine()


async def test_event_log_escapes_control_characters(app_factory: Any) -> None:
    app = app_factory(start_engine=False)
    async with app.run_test(size=(120, 40)) as pilot:
        log = app.dashboard.log_widget
        log.record(JobFailed(None, "bad\x1b[31mname", "server said \x07no\nreally"))
        log.record(LogMessage("warning", "retry [bold]x[/bold]"))
        await pilot.pause()
        assert "\\e[31m" in log.lines_written[-2]
        assert "\\x07no\\nreally" in log.lines_written[-2]
        assert "\x1b" not in "".join(log.lines_written)
        assert "[bold]x[/bold]" in log.lines_written[-1]  # markup is text, not style


async def test_job_details_show_fields(app_factory: Any, data_dir: Any) -> None:
    app = app_factory()
    async with app.run_test(size=(80, 24)) as pilot:
        browser = app.dashboard.browser
        await wait_for(pilot, lambda: browser.root.children)
        while browser.highlighted is None or browser.highlighted.name != b"alpha.txt":
            await pilot.press("j")
        await pilot.press("u")
        await wait_for(pilot, lambda: app.dashboard.queue.counts().get("done") == 1)
        await pilot.press("2", "enter")
        await wait_for(pilot, lambda: app.screen.__class__.__name__ == "JobDetailsScreen")
        d = app.screen.details
        assert d.path.endswith("alpha.txt") and d.upload_id and d.md5 and d.offset == 1000
        await pilot.press("escape")
        await app.shutdown_engine()
