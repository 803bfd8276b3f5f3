"""A cancelled job pruned (`status --prune`, another process's journal connection) while
this session still holds it in memory is not revived as a job without a journal row:
queued again, the file becomes a new job with its own row, shown and resumable."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import httpx

from synapse_tui.engine.events import Event, JobState, LogMessage
from synapse_tui.engine.journal import FINISHED, Journal
from synapse_tui.engine.protocol import Credentials, ProtocolClient
from synapse_tui.engine.scheduler import EngineOptions, UploadManager
from tests.engine.test_cancel_replan import cancelled_mid_upload
from tests.harness.embedded import EmbeddedServer


async def test_a_pruned_cancelled_job_queued_again_is_a_new_job_with_a_row(
    embedded_server: EmbeddedServer, tmp_path: Path
) -> None:
    url, token = embedded_server.url, embedded_server.token
    path = tmp_path / "a.bin"
    path.write_bytes(os.urandom(2 << 20))
    options = EngineOptions(
        host=url, chunk_size=64 << 10, tick=0.05, backoff_base=0.01, strategy="chunked"
    )
    options.bwlimit = 256 << 10
    events: list[Event] = []
    state = tmp_path / "state"
    client = ProtocolClient(url, Credentials(access_token=token))
    async with UploadManager(client, Journal(state), options, [events.append]) as m:
        job = await cancelled_mid_upload(m, path)
        await m.journal.settled()
        other = Journal(state)  # `status --prune` of another command
        try:
            assert await asyncio.to_thread(other.prune, FINISHED) == (1, 0)
        finally:
            other.close()
        m.set_bwlimit(None)
        await m.add_paths([str(path)])
        await m.wait_idle()
    journal = Journal(state)
    try:
        rows = journal.jobs()
    finally:
        journal.close()
    assert [(r.path, r.state) for r in rows] == [(os.fsencode(path), JobState.DONE)]
    assert rows[0].id != job.id  # a new job: the pruned id is never given again
    done = httpx.get(
        f"{url}/chunked_upload/{rows[0].upload_id}/", headers=embedded_server.headers()
    )
    stored = httpx.get(str(done.json()["file"]), headers=embedded_server.headers()).content
    assert stored == path.read_bytes()
    said = [e.message for e in events if isinstance(e, LogMessage)]
    assert any("pruned" in s and "uploading it anew" in s for s in said), said
