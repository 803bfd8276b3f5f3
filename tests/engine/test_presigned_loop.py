"""The presigned path's journal set-up while another process holds the journal's write
lock does not stop the engine's loop (issue 19).

Every upload goes through the presigned service, which made its tables (and dropped stale
grants) on first use with a blocking call into the journal's writer: behind another
process's lock, the loop, and every upload with it, stood still. Now the set-up is awaited
and a grant's read follows `Journal.settled`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from synapse_tui.engine.events import Event, JobState
from tests.engine.fakeserver import FakeServer
from tests.engine.test_scale import tiny_files
from tests.engine.test_uploader import done, manager
from tests.harness.heartbeat import Heartbeat
from tests.harness.lock_holder import LockHolder, until

HOLD = 3.0  # seconds the other process keeps the write lock


async def test_the_first_upload_with_the_journal_locked_elsewhere(tmp_path: Path) -> None:
    tiny_files(tmp_path / "src", 3)
    events: list[Event] = []
    async with manager(FakeServer(), tmp_path / "state", events) as m:
        m.drain()
        await m.add_paths([str(tmp_path / "src")])
        await m.journal.settled()
        with LockHolder(m.journal.path, HOLD) as holder:
            async with Heartbeat() as beat:
                m.undrain()  # the first job starts: the presigned service is set up
                await until(lambda: not holder.held(), 4 * HOLD, "the lock to go")
            assert beat.longest < HOLD / 2, f"the loop stood still for {beat.longest:.1f}s"
        await asyncio.wait_for(m.wait_idle(), 60)
        assert len(done(events)) == 3
        assert m.totals().counts[JobState.DONE.value] == 3
