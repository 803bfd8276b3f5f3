"""`status --prune` through the engine does not stop the engine's loop.

The engine's answer to Prune waited (blocking) for its DELETE on the journal's writer
thread: behind every write queued before it, and behind another process's write lock
(busy_timeout, 30 s, then again). Meanwhile the loop, and every upload and client of the
engine, stood still. The loop must go on; the answer comes once the prune is committed.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

from synapse_tui.engine.hashing import Identity
from synapse_tui.engine.journal import Journal, NewJob
from synapse_tui.service import queries
from synapse_tui.service.wire import Prune
from tests.harness.lock_holder import LockHolder

HOLD = 2.0  # seconds the other process keeps the write lock


async def test_a_prune_waits_for_the_lock_off_the_loop(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    try:
        [added] = await journal.add_jobs([NewJob(b"/a", Identity(1, 1, 1, 1), "f", "h", 1)])
        assert added.record is not None
        journal.update(added.record.id, state="done")
        await journal.settled()
        with LockHolder(str(journal.path), HOLD):
            service = cast(Any, SimpleNamespace(journal=journal))
            answer = asyncio.create_task(queries.handle(service, cast(Any, None), Prune()))
            ticks = 0
            started = time.monotonic()
            while not answer.done() and time.monotonic() - started < HOLD / 2:
                await asyncio.sleep(0.01)
                ticks += 1
            # The loop went on while the other process held the lock.
            assert ticks >= 10 and not answer.done()
            assert await asyncio.wait_for(answer, 60) == {"pruned": 1, "kept": 0}
    finally:
        journal.close()
    db = sqlite3.connect(f"file:{journal.path}?mode=ro", uri=True)
    try:
        assert db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == 0
    finally:
        db.close()
