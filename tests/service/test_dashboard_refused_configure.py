"""The settings screen asks the engine for another host; when the engine refuses, the
dashboard's header keeps showing the backend the engine still uploads to."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Input

from synapse_tui.config import Settings
from synapse_tui.engine.credentials import Credentials
from synapse_tui.ui.app import SynapseApp
from synapse_tui.ui.screens.settings import SettingsScreen
from synapse_tui.ui.service_bridge import ServiceBridge
from synapse_tui.ui.widgets.backend_banner import BackendBanner
from tests.service.conftest import Env, engine_pid
from tests.service.test_headless_engine import write
from tests.ui.conftest import wait_for

KIB = 1024


async def test_a_refused_host_change_leaves_the_header_on_the_engines_host(
    engine_env: Env, tmp_path: Path
) -> None:
    folder = tmp_path / "data"
    slow = write(folder / "slow.bin", 1024 * KIB)
    run = engine_env.run("upload", str(slow), "--detach", "--bwlimit", "64K", "--chunk-size", "64K")
    assert run.returncode == 0, run.stderr
    pid = engine_pid(engine_env.state)
    # This dashboard has no token of its own: a new host without one is refused (the
    # engine's token never goes to another host).
    settings = Settings(
        host=engine_env.server.url, credentials=Credentials(), state_dir=engine_env.state
    )
    app = SynapseApp(settings, str(folder), service=True, progress_interval=0.05)
    other = "http://127.0.0.1:9"
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.bridge, ServiceBridge))
        banner = app.dashboard.query_one("#banner", BackendBanner)
        await wait_for(pilot, lambda: banner.host == engine_env.server.url)
        await pilot.press("s")
        await wait_for(pilot, lambda: isinstance(app.screen, SettingsScreen))
        app.screen.query_one("#host", Input).value = other
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: not isinstance(app.screen, SettingsScreen))
        log = app.dashboard.log_widget
        await wait_for(pilot, lambda: "the engine keeps" in "".join(log.lines_written))
        text = "".join(log.lines_written)
        assert "needs its own credentials" in text and "took the new settings" not in text
        assert banner.host == engine_env.server.url and app.settings.host == engine_env.server.url
        assert other not in str(banner.render())
    assert engine_pid(engine_env.state) == pid  # the engine went on, on its own host
