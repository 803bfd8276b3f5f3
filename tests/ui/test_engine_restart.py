"""After a fatal stop (a refused token), new settings start the engine again in place."""

from __future__ import annotations

from typing import Any

from synapse_tui.engine.protocol import Credentials
from synapse_tui.ui.screens.settings import SettingsScreen
from tests.ui.conftest import Backend, settings_for, wait_for


async def test_new_token_in_settings_restarts_a_stopped_engine(
    app_factory: Any, backend: Backend
) -> None:
    """A wrong token: the queued files stop (paused, "stopped: ..."), nothing left
    running. The right token saved in the settings screen starts a new engine, which
    resumes them to the end -- without quitting the dashboard."""
    settings = settings_for(backend, credentials=Credentials(access_token="wrong-token-123"))
    app = app_factory(settings=settings)
    async with app.run_test(size=(120, 40)) as pilot:
        browser = app.dashboard.browser
        await wait_for(pilot, lambda: browser.root.children)
        await pilot.press("u")  # queues the highlighted folder, images/ (two files)
        first = app.bridge
        assert first is not None
        banner = app.dashboard.query_one("#banner")
        await wait_for(pilot, lambda: banner.status == "STOPPED")
        await wait_for(pilot, lambda: app.dashboard.queue.counts().get("paused") == 2)
        assert backend.stored() == []

        await pilot.press("s")
        await wait_for(pilot, lambda: isinstance(app.screen, SettingsScreen))
        app.screen.query_one("#token").focus()
        await pilot.press(*backend.token, "ctrl+s")
        await wait_for(pilot, lambda: app.dashboard.queue.counts().get("done") == 2, 30)
        assert app.bridge is not None and app.bridge is not first
        assert banner.status == ""
        assert not first.running  # the stopped engine's thread was ended
        assert sorted(backend.stored()) == [b"\x01" * 40_000, b"\x02" * 50_000]
        log = "".join(app.dashboard.log_widget.lines_written)
        assert "engine started again" in log and backend.token not in log
        await app.shutdown_engine()
