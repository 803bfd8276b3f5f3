"""`scan` through the engine does not stop the engine's loop on a journal write in waiting.

The engine's scan asked the ledger, file by file, on the journal's reading connection,
which first waited (blocking) for every write queued before: the engine's own writes,
behind another process's write lock (busy_timeout, 30 s, then again). Meanwhile the loop,
and every upload and client of the engine, stood still. A scan's report reads the ledger
as committed (a file finished a few ms ago may show as not yet uploaded).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

from synapse_tui.engine.journal import Journal
from synapse_tui.engine.scan_check import Checked
from synapse_tui.service import queries
from synapse_tui.service.wire import ScanStart
from tests.harness.lock_holder import LockHolder

HOLD = 2.0  # seconds the other process keeps the write lock


async def test_a_scan_reads_the_ledger_without_waiting_for_the_writer(tmp_path: Path) -> None:
    folder = tmp_path / "src"
    folder.mkdir()
    for i in range(3):
        (folder / f"f{i}.bin").write_bytes(b"%d" % i * 100)
    journal = Journal(tmp_path / "state")
    try:
        with LockHolder(str(journal.path), HOLD):
            # A write of the engine's waits for the lock on the writer's thread.
            journal.write(lambda db: db.execute("INSERT INTO job_errors VALUES (0, 0, 'x')"))
            service = cast(Any, SimpleNamespace(journal=journal))
            command = ScanStart(paths=[str(folder)], host="http://127.0.0.1:1")

            async def findings() -> list[Checked]:
                return [c async for c in queries._findings(service, command)]

            found = asyncio.create_task(findings())
            ticks = 0
            started = time.monotonic()
            while time.monotonic() - started < HOLD / 2:
                await asyncio.sleep(0.01)
                ticks += 1
            assert ticks >= 10  # the loop went on while the other process held the lock
            assert found.done()  # and the scan did not wait for the lock either
            assert sum(c.files for c in found.result()) == 3
    finally:
        journal.close()
