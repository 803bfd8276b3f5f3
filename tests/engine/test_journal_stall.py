"""Another process holding the journal's write lock does not stop the engine's loop (issue 19).

SQLite waits up to busy_timeout (30 s) for a write lock another process holds. That wait
happens on the journal's writer thread: the loop goes on moving the bytes of an upload in
flight, and the writes queued meanwhile land once the other process lets go.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from synapse_tui.engine.events import Event, JobState
from synapse_tui.engine.journal import Journal
from tests.faults.helpers import make_file, make_manager
from tests.harness.embedded import EmbeddedServer
from tests.harness.lock_holder import LockHolder, until

KIB = 1024
MIB = 1024 * KIB


async def test_a_write_lock_held_by_another_process_stalls_no_upload(
    embedded_server: EmbeddedServer, tmp_path: Path
) -> None:
    big = make_file(tmp_path / "big.bin", 6 * MIB)
    small = make_file(tmp_path / "small.bin", 10 * KIB)
    state = tmp_path / "state"
    events: list[Event] = []
    m = make_manager(
        embedded_server.url,
        embedded_server.token,
        state,
        events,
        chunk_size=2 * MIB,
        bwlimit=1 * MIB,  # a chunk takes ~2 s: in flight while the lock is held
        stall_timeout=60.0,
        response_timeout=60.0,
    )
    async with m:
        await m.add_paths([str(big)])
        await until(lambda: any(j.sent > 256 * KIB for j in m.jobs.values()), 30, "bytes")
        [job] = m.jobs.values()
        with LockHolder(str(state / Journal.FILENAME)) as holder:
            # A new file needs a row (a write) now; the old journal waited for the lock
            # on the loop, and every upload with it.
            adding = asyncio.create_task(m.add_paths([str(small)]))
            before = job.sent
            await until(lambda: job.sent >= before + MIB, 20, "the upload in flight to go on")
            assert holder.held()  # the lock was held all along
            assert not adding.done()  # its row waits for the lock, on the writer's thread
            holder.release()
        await asyncio.wait_for(adding, 30)
        await asyncio.wait_for(m.wait_idle(), 60)
        assert {j.state for j in m.jobs.values()} <= {JobState.DONE}
    m.journal.close()
    # Nothing lost: every state change is in the journal, read by another connection.
    db = sqlite3.connect(f"file:{state / Journal.FILENAME}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT path, state, offset, size, upload_id FROM jobs").fetchall()
        ledger = db.execute("SELECT COUNT(*) FROM ledger").fetchone()[0]
    finally:
        db.close()
    assert sorted((bytes(r[0]), r[1], r[2]) for r in rows) == sorted(
        [(str(big).encode(), "done", 6 * MIB), (str(small).encode(), "done", 10 * KIB)]
    )
    assert all(r[4] for r in rows) and ledger == 2
