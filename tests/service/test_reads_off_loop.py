"""A client's window or job details while another process holds the journal's write lock
do not stop the engine's loop: the command awaits the engine's queued writes first, so its
reads wait for nothing (issue 19: the journal off the loop, also for the views)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, cast

from synapse_tui.engine.events import Event
from synapse_tui.engine.journal import Journal
from synapse_tui.service import commands
from synapse_tui.service.routing import Router
from synapse_tui.service.store import EngineStore
from synapse_tui.service.wire import JobInfo, ListJobs
from tests.faults.helpers import make_file, make_manager
from tests.harness.embedded import EmbeddedServer
from tests.harness.lock_holder import LockHolder, until

if TYPE_CHECKING:
    from synapse_tui.service.daemon import EngineService
    from synapse_tui.service.peer import Peer

KIB = 1024
MIB = 1024 * KIB


async def test_a_window_asked_while_the_journal_is_locked_elsewhere_stalls_no_upload(
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
    # The service as far as these commands see it: its manager and journal.
    store = EngineStore(m.journal.path)
    service = cast(
        "EngineService",
        SimpleNamespace(manager=m, journal=m.journal, store=store, stopping=None, router=Router()),
    )
    peer = cast("Peer", None)
    async with m:
        await m.add_paths([str(big)])
        await until(lambda: any(j.sent > 256 * KIB for j in m.jobs.values()), 30, "bytes")
        [job] = m.jobs.values()
        with LockHolder(str(state / Journal.FILENAME)) as holder:
            adding = asyncio.create_task(m.add_paths([str(small)]))  # a write that waits
            await until(lambda: not m.journal.caught_up(), 10, "a write to wait")
            window = asyncio.create_task(
                commands.handle(service, peer, ListJobs(limit=10, scope="engine"))
            )
            details = asyncio.create_task(commands.handle(service, peer, JobInfo(job=job.id)))
            before = job.sent
            # Reading on the loop would block it here until SQLite gave up (30 s).
            await until(lambda: job.sent >= before + MIB, 20, "the upload in flight to go on")
            assert holder.held()  # the lock was held all along
            assert not window.done() and not details.done()  # they wait, off the loop
            holder.release()
        listed = await asyncio.wait_for(window, 30)
        info = await asyncio.wait_for(details, 30)
        await asyncio.wait_for(adding, 30)
        assert job.id in [row["id"] for row in listed["jobs"]]
        assert info["job"]["job_id"] == job.id and info["job"]["path"] == job.display
        await asyncio.wait_for(m.wait_idle(), 60)
    store.close()
