"""`u` pressed while the dashboard's background engine is still starting queues the
entries once the engine is ready (it said "nothing to queue" and dropped the key)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from synapse_tui.config import Settings
from synapse_tui.engine.credentials import Credentials
from synapse_tui.ui.app import SynapseApp
from synapse_tui.ui.service_bridge import ServiceBridge
from tests.service.conftest import Env
from tests.service.test_headless_engine import write
from tests.ui.conftest import wait_for


async def test_u_while_the_engine_starts_queues_once_it_is_ready(
    engine_env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "data"
    write(folder / "a.bin", 10 * 1024)
    gate = asyncio.Event()
    original = ServiceBridge.start

    async def held(self: ServiceBridge) -> None:  # the engine is slow to come
        await gate.wait()
        await original(self)

    monkeypatch.setattr(ServiceBridge, "start", held)
    settings = Settings(
        host=engine_env.server.url,
        credentials=Credentials(access_token=engine_env.server.token),
        state_dir=engine_env.state,
    )
    app = SynapseApp(settings, str(folder), service=True, progress_interval=0.05)
    async with app.run_test(size=(120, 40)) as pilot:
        browser = app.dashboard.browser
        await wait_for(pilot, lambda: bool(browser.targets()))
        assert app.bridge is None
        await pilot.press("u")
        log = app.dashboard.log_widget.lines_written
        assert any("queued a.bin (when the engine is ready)" in line for line in log), log
        gate.set()
        queue = app.dashboard.queue
        await wait_for(pilot, lambda: isinstance(app.bridge, ServiceBridge))
        await wait_for(pilot, lambda: [r.state for r in queue.rows_by_id.values()] == ["done"])
        await pilot.press("q")
        await wait_for(pilot, lambda: not app.is_running)
    assert engine_env.run("engine", "stop").returncode == 0
