"""A cancelled job of `upload --force`, pruned while this session holds it in memory, is
uploaded anew when its file is queued again with --force (not skipped as uploaded before)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from synapse_tui.engine.events import JobSkipped, JobState
from synapse_tui.engine.journal import FINISHED, Journal
from tests.engine.revival_rig import big_file, manager
from tests.engine.test_cancel_replan import until
from tests.harness.embedded import EmbeddedServer


async def test_a_pruned_forced_cancelled_job_forced_again_uploads(
    embedded_server: EmbeddedServer, tmp_path: Path
) -> None:
    path = big_file(tmp_path)
    engine, events, state = manager(embedded_server, tmp_path, slow=False)
    async with engine as m:
        await m.add_paths([str(path)])  # uploaded once: the ledger knows it
        await m.wait_idle()
        m.set_bwlimit(256 << 10)  # slow enough to cancel the forced upload mid-way
        await m.add_paths([str(path)], force=True)
        await until(
            lambda: any(j.state != JobState.DONE and j.upload_url for j in m.jobs.values()),
            "the forced upload",
        )
        job = next(j for j in m.jobs.values() if j.state != JobState.DONE)
        m.cancel(job.id)
        await until(lambda: job.state == JobState.CANCELLED, "the cancel")
        await m.journal.settled()
        other = Journal(state)  # `status --prune` of another command
        try:
            assert (await asyncio.to_thread(other.prune, FINISHED))[0] == 2
        finally:
            other.close()
        m.set_bwlimit(None)
        totals = await m.add_paths([str(path)], force=True)
        await m.wait_idle()
    skipped = [e for e in events if isinstance(e, JobSkipped)]
    assert totals.already_uploaded == 0, skipped
    journal = Journal(state)
    try:
        rows = journal.jobs()
    finally:
        journal.close()
    assert [(r.path, r.state) for r in rows] == [(os.fsencode(path), JobState.DONE)], skipped
    assert rows[0].id != job.id
