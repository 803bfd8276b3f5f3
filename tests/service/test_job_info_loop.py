"""The engine's answer to `job` (a job's details and errors) does not wait for the writer.

It read the job's errors on the journal's reading connection, which first waited
(blocking the engine's loop) for every write queued before: behind another process's
write lock (busy_timeout, 30 s, then again), the loop stood still until the lock went.
"""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

from synapse_tui.engine.events import Event
from synapse_tui.service import commands
from tests.faults.helpers import make_file, make_manager
from tests.harness.embedded import EmbeddedServer
from tests.harness.lock_holder import LockHolder

HOLD = 2.0  # seconds the other process keeps the write lock


async def test_job_details_do_not_wait_for_another_process_lock(
    embedded_server: EmbeddedServer, tmp_path: Path
) -> None:
    src = make_file(tmp_path / "a.bin", 1000)
    events: list[Event] = []
    m = make_manager(embedded_server.url, embedded_server.token, tmp_path / "state", events)
    async with m:
        m.drain()  # queued, not started
        await m.add_paths([str(src)])
        [job] = m.jobs.values()
        m.journal.add_error(job.id, "an earlier error")
        await m.journal.settled()
        with LockHolder(str(m.journal.path), HOLD):
            m.set_priority(job.id, 5)  # a write: it waits for the lock on the writer's thread
            started = time.monotonic()
            answer = commands._job(cast(Any, SimpleNamespace(manager=m)), job.id)
            took = time.monotonic() - started
            assert took < HOLD / 2, took
            assert answer["job"]["job_id"] == job.id
            assert [e[1] for e in answer["job"]["errors"]] == ["an earlier error"]
    m.journal.close()
