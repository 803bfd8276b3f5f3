"""The engine service opens the journal and its settings off its loop (issue 19): the
settings table is written at start-up, which waits for another process's write lock (up
to 10 s, on the loop before)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from synapse_tui.config import Settings
from synapse_tui.engine.journal import Journal
from synapse_tui.service.daemon import EngineService, ServiceOptions
from tests.harness.heartbeat import Heartbeat
from tests.harness.lock_holder import LockHolder, until

HOLD = 3.0  # seconds the other process keeps the write lock


async def test_start_up_with_the_journal_locked_elsewhere(tmp_path: Path) -> None:
    state = tmp_path / "state"
    Journal(state).close()  # a journal the engine never opened: no settings table yet
    service = EngineService(Settings(state_dir=state), ServiceOptions())
    with LockHolder(state / Journal.FILENAME, HOLD) as holder:
        async with Heartbeat() as beat:
            running = asyncio.create_task(service.run())
            await until(lambda: not holder.held(), 4 * HOLD, "the lock to go")
        assert beat.longest < HOLD / 2, f"the loop stood still for {beat.longest:.1f}s"
    await until(lambda: service.store is not None, 30, "the engine to open its settings")
    service.request_stop("test")
    assert await asyncio.wait_for(running, 30) == 0
