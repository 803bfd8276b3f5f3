"""The dashboard's "cancel all" (`X`) cancels the collection files waiting for their data
unit too: in the engine they are journal rows, not jobs in memory, and the units step
would otherwise register the files the person cancelled."""

from __future__ import annotations

import json
from pathlib import Path

from synapse_tui.ui.screens.confirm import ConfirmScreen
from synapse_tui.ui.service_bridge import ServiceBridge
from tests.service.conftest import Env, wait_for
from tests.service.test_collection_engine import pairs, unit_count
from tests.service.test_dashboard_client import _app
from tests.service.test_headless_engine import write
from tests.ui.conftest import wait_for as wait_in


def _states(env: Env) -> dict[str, str]:
    run = env.run("status", "--all", "--json")
    assert run.returncode == 0, run.stderr
    rows = [json.loads(line) for line in run.stdout.splitlines() if line.strip()]
    return {Path(r["path"]).name: r["state"] for r in rows}


async def test_cancel_all_cancels_the_files_waiting_for_their_unit(
    engine_env: Env, tmp_path: Path
) -> None:
    n = 6
    data = pairs(tmp_path / "data", "w", n)
    slow = write(tmp_path / "slow" / "slow.bin", 2 * 1024 * 1024)
    # The slow plain upload keeps the engine busy: the units step waits for it, and the
    # collection's files, uploaded, wait for their unit as rows.
    first = engine_env.run("upload", str(slow), "--detach", "--bwlimit", "64K")
    assert first.returncode == 0, first.stderr
    args = ["--collection", "1", "--group-by-stem", "--spec-map", "jpg=image,json=meta"]
    second = engine_env.run("upload", str(data), *args, "--detach")
    assert second.returncode == 0, second.stderr
    wait_for(
        lambda: list(_states(engine_env).values()).count("registering") == 2 * n,
        what="the collection's files waiting for their unit",
    )
    before = unit_count(engine_env)
    app = _app(engine_env, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_in(pilot, lambda: isinstance(app.bridge, ServiceBridge))
        await wait_in(pilot, lambda: bool(app.dashboard.queue.rows_by_id))
        await pilot.press("X")
        await wait_in(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_in(pilot, lambda: not isinstance(app.screen, ConfirmScreen))
        lines = app.dashboard.log_widget.lines_written
        await wait_in(pilot, lambda: any("cancelled" in line for line in lines))
        assert f"cancelled {2 * n + 1} job(s)" in "\n".join(lines)  # each once
    wait_for(
        lambda: set(_states(engine_env).values()) == {"cancelled"},
        what="every job cancelled",
    )
    wait_for(lambda: engine_env.run("engine", "status", "--json").stdout.count('"idle": true'))
    assert unit_count(engine_env) == before  # no unit for a file the person cancelled
    engine_env.run("engine", "stop")
