"""Two processes scanning the same file at once make one job of it (issue 19's single write
discipline moved the scan's lookup out of the write transaction: the insert looks again)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from synapse_tui.engine.events import Event
from synapse_tui.engine.journal import Journal
from tests.faults.helpers import make_file, make_manager
from tests.harness.embedded import EmbeddedServer
from tests.harness.lock_holder import LockHolder


async def test_two_scans_of_one_file_racing_make_one_job(
    embedded_server: EmbeddedServer, tmp_path: Path
) -> None:
    f = make_file(tmp_path / "one.bin", 4096)
    state = tmp_path / "state"
    a_events: list[Event] = []
    b_events: list[Event] = []
    # Two managers, two journals (two connections, two writer threads): two processes.
    a = make_manager(embedded_server.url, embedded_server.token, state, a_events)
    b = make_manager(embedded_server.url, embedded_server.token, state, b_events)
    async with a, b:
        a.drain()  # nothing uploads: the rows are what is compared
        b.drain()
        with LockHolder(str(state / Journal.FILENAME)) as holder:
            # Both look the file up while neither's new row can be written yet.
            first = asyncio.create_task(a.add_paths([str(f)]))
            second = asyncio.create_task(b.add_paths([str(f)]))
            deadline = asyncio.get_running_loop().time() + 20
            while a.journal.caught_up() or b.journal.caught_up():
                assert asyncio.get_running_loop().time() < deadline, "both inserts waiting"
                await asyncio.sleep(0.01)
            holder.release()
        await asyncio.wait_for(asyncio.gather(first, second), 30)
    db = sqlite3.connect(f"file:{state / Journal.FILENAME}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT id FROM jobs WHERE path = ?", (str(f).encode(),)).fetchall()
    finally:
        db.close()
    assert len(rows) == 1, rows
