"""A follower that names the event kinds it shows gets only those (and its batch_done); one
that names none gets every event of its batch, as before."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from synapse_tui.config import Settings
from synapse_tui.engine.credentials import Credentials
from synapse_tui.service.client import connect
from synapse_tui.service.front import shown_events
from synapse_tui.service.wire import Add, Resume
from tests.service.conftest import Env, engine_pid, wait_for


def _settings(env: Env) -> Settings:
    return Settings(
        host=env.server.url,
        credentials=Credentials(access_token=env.server.token),
        state_dir=env.state,
    )


async def _follow(settings: Settings, command: Add | Resume) -> list[str]:
    """The kinds of the lines the engine sends this connection for its batch, in order."""
    client = await connect(settings, "upload")
    kinds: list[str] = []
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on_event(obj: dict[str, Any]) -> None:
        kinds.append(str(obj.get("event")))
        if obj.get("event") == "batch_done" and not done.done():
            done.set_result(None)

    client.on_event = on_event
    try:
        await client.request(command)
        await asyncio.wait_for(done, 30)
    finally:
        await client.close()
    return kinds


def test_a_follower_gets_the_kinds_it_names(engine_env: Env, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for i in range(3):
        (data / f"f{i}.bin").write_bytes(os.urandom(1000 + i))
    settings = _settings(engine_env)
    wanted = ["file_done", "scan"]
    filtered = asyncio.run(_follow(settings, Add(paths=[str(data / "f0.bin")], events=wanted)))
    assert set(filtered) == {"file_done", "scan", "batch_done"}, filtered
    everything = asyncio.run(_follow(settings, Add(paths=[str(data / "f1.bin")])))
    assert {"file_queued", "job_state", "file_done", "scan", "batch_done"} <= set(everything)

    # What the headless front ends ask for: their output, without the per-file states.
    json_kinds = asyncio.run(
        _follow(settings, Add(paths=[str(data / "f2.bin")], events=shown_events(True)))
    )
    assert "job_state" not in json_kinds and json_kinds.count("file_queued") == 1, json_kinds
    assert json_kinds.count("file_done") == 1 and json_kinds[-1] == "batch_done"
    wait_for(lambda: engine_pid(engine_env.state) is None, what="the engine to exit")


def test_the_text_output_asks_for_no_queued_lines() -> None:
    assert "file_queued" not in shown_events(False)
    assert set(shown_events(True)) - set(shown_events(False)) == {"file_queued"}
    assert "job_state" not in shown_events(True) and "job_progress" not in shown_events(True)
