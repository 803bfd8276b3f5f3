"""The in-thread dashboard bridge (`--foreground`) reads the journal without stopping the
engine's loop while another process holds the journal's write lock (issue 19): a job's
details read its errors after `Journal.settled`, not with a blocking wait on that loop."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from synapse_tui.config import Settings
from synapse_tui.engine.scheduler import UploadManager
from synapse_tui.ui.bridge import EngineBridge
from tests.engine.fakeserver import FakeServer
from tests.engine.test_scale import tiny_files
from tests.engine.test_uploader import manager
from tests.harness.heartbeat import Heartbeat
from tests.harness.lock_holder import LockHolder, until

HOLD = 3.0  # seconds the other process keeps the write lock


class Sink:
    def post_message(self, message: Any) -> bool:
        return True


def test_job_details_with_the_journal_locked_elsewhere(tmp_path: Path) -> None:
    tiny_files(tmp_path / "src", 3)
    made: list[UploadManager] = []

    def factory(settings: Settings, listeners: list[Any]) -> UploadManager:
        m = manager(FakeServer(), tmp_path / "state", [])
        m.listeners.extend(listeners)
        m.drain()
        made.append(m)
        return m

    bridge = EngineBridge(Sink(), Settings(host="http://127.0.0.1:1"), factory=factory)
    bridge.start()
    try:
        loop = bridge.loop
        assert loop is not None
        [m] = made

        async def scenario() -> None:
            await asyncio.wrap_future(
                asyncio.run_coroutine_threadsafe(m.add_paths([str(tmp_path / "src")]), loop)
            )
            ids = await bridge.ask(lambda: [j.id for j in m.window(0, 10)])
            beat = Heartbeat()  # on the engine's loop
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(beat.__aenter__(), loop))
            with LockHolder(m.journal.path, HOLD) as holder:
                # A write of the engine's waits for the lock, then a job's details are asked.
                loop.call_soon_threadsafe(lambda: m.journal.update(ids[0], attempts=0))
                details = asyncio.create_task(bridge.job_details(ids[0]))
                await until(lambda: not holder.held(), 4 * HOLD, "the lock to go")
            await asyncio.wrap_future(
                asyncio.run_coroutine_threadsafe(beat.__aexit__(None, None, None), loop)
            )
            assert beat.longest < HOLD / 2, f"the loop stood still for {beat.longest:.1f}s"
            got = await asyncio.wait_for(details, 30)
            assert got is not None and got.job_id == ids[0]

        asyncio.run(scenario())
    finally:
        bridge.stop()
