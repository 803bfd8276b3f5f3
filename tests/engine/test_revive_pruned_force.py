"""A cancelled job of `upload --force`, pruned while this session holds it in memory, is
uploaded anew when its file is queued again with --force (not skipped as uploaded before)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from synapse_tui.engine.events import Event, JobSkipped, JobState
from synapse_tui.engine.journal import FINISHED, Journal
from synapse_tui.engine.protocol import Credentials, ProtocolClient
from synapse_tui.engine.scheduler import EngineOptions, UploadManager
from tests.engine.test_cancel_replan import until
from tests.harness.embedded import EmbeddedServer


async def test_a_pruned_forced_cancelled_job_forced_again_uploads(
    embedded_server: EmbeddedServer, tmp_path: Path
) -> None:
    url, token = embedded_server.url, embedded_server.token
    path = tmp_path / "a.bin"
    path.write_bytes(os.urandom(2 << 20))
    options = EngineOptions(
        host=url, chunk_size=64 << 10, tick=0.05, backoff_base=0.01, strategy="chunked"
    )
    events: list[Event] = []
    state = tmp_path / "state"
    client = ProtocolClient(url, Credentials(access_token=token))
    async with UploadManager(client, Journal(state), options, [events.append]) as m:
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
