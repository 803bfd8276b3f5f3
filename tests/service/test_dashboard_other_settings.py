"""The dashboard attached to a running engine says, in one line, when the engine routes
or uploads otherwise than the dashboard's own settings would: another proxy (by digest,
never the URL) or another value of a setting the dashboard names (`--strategy`, ...)."""

from __future__ import annotations

from pathlib import Path

from synapse_tui.config import Settings
from synapse_tui.engine.credentials import Credentials
from synapse_tui.ui.app import SynapseApp
from synapse_tui.ui.screens.quit import QuitScreen
from synapse_tui.ui.service_bridge import ServiceBridge
from tests.service.conftest import Env
from tests.service.test_headless_engine import write
from tests.ui.conftest import wait_for

USES = "the engine of this state folder uses "


async def _attached_log(env: Env, folder: Path, settings: Settings) -> str:
    """The event log of a dashboard that attached, once the attach line is in it."""
    app = SynapseApp(settings, str(folder), service=True, progress_interval=0.05)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.bridge, ServiceBridge))
        lines = app.dashboard.log_widget.lines_written
        await wait_for(pilot, lambda: any("attached to the engine" in line for line in lines))
        log = "\n".join(lines)
        await pilot.press("q")
        await wait_for(pilot, lambda: isinstance(app.screen, QuitScreen) or not app.is_running)
        if app.is_running:
            await pilot.press("k")  # keep the engine's upload going
            await wait_for(pilot, lambda: not app.is_running)
    return log


def _settings(env: Env) -> Settings:
    return Settings(
        host=env.server.url,
        credentials=Credentials(access_token=env.server.token),
        state_dir=env.state,
    )


async def test_a_dashboard_with_another_proxy_and_strategy_says_so_in_one_line(
    engine_env: Env, tmp_path: Path
) -> None:
    folder = tmp_path / "data"
    write(folder / "a.bin", 4 << 20)  # slow: the engine is still busy when the dashboards come
    run = engine_env.run("upload", str(folder / "a.bin"), "--detach", "--bwlimit", "256K")
    assert run.returncode == 0, run.stderr
    same = await _attached_log(engine_env, folder, _settings(engine_env))
    assert USES not in same  # the engine's own settings: nothing to say
    mine = _settings(engine_env)
    mine.proxy = "http://someone:s3cret-pw@127.0.0.1:9"
    mine.strategy, mine.sources = "chunked", {"strategy": "command line"}
    log = await _attached_log(engine_env, folder, mine)
    [line] = [line for line in log.splitlines() if USES in line]
    assert line.endswith(
        "uses another proxy and --strategy auto (this dashboard: --strategy chunked): the"
        " uploads go its way; stop it (`synapse-tui engine stop`) or use another --state-dir"
    )
    assert "s3cret" not in log
    assert engine_env.run("engine", "stop").returncode == 0
