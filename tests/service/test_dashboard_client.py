"""The dashboard as a client of the background engine (Textual pilot, real engine process)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from synapse_tui.config import Settings
from synapse_tui.engine.credentials import Credentials
from synapse_tui.ui.app import SynapseApp
from synapse_tui.ui.screens.quit import QuitScreen
from synapse_tui.ui.service_bridge import ServiceBridge
from tests.service.conftest import Env, engine_pid
from tests.service.test_headless_engine import events, write
from tests.ui.conftest import wait_for

KIB = 1024
MIB = 1024 * KIB


def _app(env: Env, folder: Path) -> SynapseApp:
    settings = Settings(
        host=env.server.url,
        credentials=Credentials(access_token=env.server.token),
        state_dir=env.state,
        chunk_size=64 * KIB,
    )
    return SynapseApp(settings, str(folder), service=True, progress_interval=0.05)


async def test_the_dashboard_shows_what_another_terminal_queued_and_quits_leaving_it_running(
    engine_env: Env, tmp_path: Path
) -> None:
    folder = tmp_path / "data"
    slow = write(folder / "slow.bin", 1024 * KIB)
    run = engine_env.run(
        "upload", str(slow), "--detach", "--bwlimit", "128K", "--chunk-size", "64K"
    )
    assert run.returncode == 0, run.stderr
    pid = engine_pid(engine_env.state)
    app = _app(engine_env, folder)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.bridge, ServiceBridge))
        queue = app.dashboard.queue
        await wait_for(pilot, lambda: len(queue.rows_by_id) == 1)
        [row] = queue.rows_by_id.values()
        assert row.path.endswith("slow.bin") and row.state in ("uploading", "queued")
        log = "\n".join(app.dashboard.log_widget.lines_written)
        assert "attached to the engine running since" in log
        await pilot.press("q")
        await wait_for(pilot, lambda: isinstance(app.screen, QuitScreen))
        await pilot.press("k")  # keep uploading in the background
        await wait_for(pilot, lambda: not app.is_running)
    assert app.left_running is not None and app.left_running["pid"] == pid
    assert engine_pid(engine_env.state) == pid
    status = json.loads(engine_env.run("engine", "status", "--json").stdout)
    assert status["active"] == 1  # still uploading, nobody attached


async def test_pause_and_quit_pauses_everything(engine_env: Env, tmp_path: Path) -> None:
    folder = tmp_path / "data"
    slow = write(folder / "slow.bin", 1024 * KIB)
    run = engine_env.run(
        "upload", str(slow), "--detach", "--bwlimit", "128K", "--chunk-size", "64K"
    )
    assert run.returncode == 0, run.stderr
    app = _app(engine_env, folder)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.bridge, ServiceBridge))
        await pilot.press("q")
        await wait_for(pilot, lambda: isinstance(app.screen, QuitScreen))
        await pilot.press("p")
        await wait_for(pilot, lambda: not app.is_running)
    assert app.left_running is None

    def paused() -> bool:
        rows = events(engine_env.run("status", "--json").stdout)
        return bool(rows) and rows[0]["state"] == "paused"

    from tests.service.conftest import wait_for as wait

    wait(paused, what="the job paused")


async def test_with_no_backend_configured_the_engine_hosts_the_local_one(
    engine_env: Env, tmp_path: Path
) -> None:
    folder = tmp_path / "data"
    f = write(folder / "a.bin", 10 * KIB)
    settings = Settings(state_dir=engine_env.state)  # no host, no token
    app = SynapseApp(settings, str(folder), service=True, progress_interval=0.05)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.bridge, ServiceBridge))
        assert app.local and str(app.settings.host).startswith("http://127.0.0.1:")
        await pilot.press("u")  # the highlighted file
        queue = app.dashboard.queue
        await wait_for(pilot, lambda: [r.state for r in queue.rows_by_id.values()] == ["done"])
        await pilot.press("q")
        await wait_for(pilot, lambda: not app.is_running)
    pid = engine_pid(engine_env.state)
    assert pid is not None  # the engine, and the backend inside it, outlive the dashboard
    status = json.loads(engine_env.run("engine", "status", "--json").stdout)
    assert status["local"] is True and status["pid"] == pid
    stored = list((Path(os.environ["SYNAPSE_TUI_DATA_DIR"]) / "server").rglob("*"))
    assert any(p.is_file() and p.read_bytes() == f.read_bytes() for p in stored)


async def test_a_dashboard_for_another_host_says_the_engine_keeps_its_own(
    engine_env: Env, tmp_path: Path
) -> None:
    """One engine per state folder keeps the backend it was started for: a dashboard given
    another --host attaches to it all the same, and says so instead of failing silently."""
    folder = tmp_path / "data"
    # Slow enough that the engine `upload --detach` started is still uploading when the
    # dashboard comes: one that only headless commands used leaves with its last job.
    write(folder / "a.bin", 4 * MIB)
    run = engine_env.run("upload", str(folder / "a.bin"), "--detach", "--bwlimit", "256K")
    assert run.returncode == 0, run.stderr
    app = _app(engine_env, folder)
    app.settings.host = "http://127.0.0.1:9/other"
    said = f"uploads to {engine_env.server.url}, not http://127.0.0.1:9/other"
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.bridge, ServiceBridge))
        await wait_for(pilot, lambda: said in "\n".join(app.dashboard.log_widget.lines_written))
        await pilot.press("q")
        await wait_for(pilot, lambda: isinstance(app.screen, QuitScreen) or not app.is_running)
        if app.is_running:
            await pilot.press("k")
            await wait_for(pilot, lambda: not app.is_running)
