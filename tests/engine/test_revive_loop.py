"""A scan that revives a file cancelled in an earlier session, while another process holds
the journal's write lock, keeps the engine's loop turning (issue 19).

Reviving writes to the journal (the job's attempts); the lookups of the files after it in
the same scan batch read the journal, and a read first waits for this process's writes:
it waited on the loop, behind the other process's lock."""

from __future__ import annotations

import os
from pathlib import Path

from synapse_tui.engine.events import Event, JobState
from tests.engine.test_cancel_later_session import SIZE, cancel_part_way, manager
from tests.harness.embedded import EmbeddedServer
from tests.harness.heartbeat import Heartbeat
from tests.harness.lock_holder import LockHolder, until

HOLD = 3.0


async def test_a_revived_file_then_more_lookups_with_the_journal_locked_elsewhere(
    embedded_server: EmbeddedServer, tmp_path: Path
) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(SIZE))
    state = tmp_path / "state"
    url = embedded_server.url
    small = tmp_path / "small"
    small.mkdir()
    for i in range(20):
        (small / f"f{i:02}.bin").write_bytes(os.urandom(100) + bytes([i]))
    events: list[Event] = []
    async with manager(url, embedded_server.token, state, events) as m:
        await m.add_paths([str(small)])  # uploaded: queued again, each is looked up
        await m.wait_idle()
    m.journal.close()
    await cancel_part_way(url, embedded_server.token, big, state)
    async with manager(url, embedded_server.token, state, events) as m:
        m.drain()
        with LockHolder(m.journal.path, HOLD) as holder:
            async with Heartbeat() as beat:
                # The big file first: its revival's write, then the small files' lookups.
                await m.add_paths([str(big), str(small)])
                await until(lambda: not holder.held(), 4 * HOLD, "the lock to go")
        assert beat.longest < HOLD / 2, f"the loop stood still for {beat.longest:.1f}s"
        await m.journal.settled()
        assert m.totals().counts["queued"] == 1  # the small files: already uploaded
        revived = [j for j in m.window(0, 100) if j.size == SIZE]
        assert len(revived) == 1 and revived[0].state == JobState.QUEUED
    m.journal.close()
