"""A cancelled job pruned (`status --prune`, another process's journal connection) while
this session still holds it in memory is not revived as a job without a journal row:
queued again, the file becomes a new job with its own row, shown and resumable."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from synapse_tui.engine.events import JobState, LogMessage
from synapse_tui.engine.journal import FINISHED, Journal
from tests.engine.revival_rig import cancelled
from tests.harness.embedded import EmbeddedServer


def _stored_equals(embedded_server: EmbeddedServer, upload_id: str | None, path: Path) -> bool:
    url, headers = embedded_server.url, embedded_server.headers()
    done = httpx.get(f"{url}/chunked_upload/{upload_id}/", headers=headers)
    return httpx.get(str(done.json()["file"]), headers=headers).content == path.read_bytes()


async def test_a_pruned_cancelled_job_queued_again_is_a_new_job_with_a_row(
    embedded_server: EmbeddedServer, tmp_path: Path
) -> None:
    async with cancelled(embedded_server, tmp_path) as c:
        m, job, path, events, state = c.m, c.job, c.path, c.events, c.state
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
    assert _stored_equals(embedded_server, rows[0].upload_id, path)
    said = [e.message for e in events if isinstance(e, LogMessage)]
    assert any("pruned" in s and "uploading it anew" in s for s in said), said


# A prune by a process that does not go through the engine (a `sqlite3` shell): it holds
# the write lock, its DELETE made, until told to commit.
PRUNE = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
db.execute("BEGIN IMMEDIATE")
print("deleted", db.execute("DELETE FROM jobs WHERE state = 'cancelled'").rowcount, flush=True)
sys.stdin.readline()
db.execute("COMMIT")
print("committed", flush=True)
"""


class _Armed(dict[Any, Any]):
    """The intake's cancelled jobs: taking one out arms `commit`, run before the next
    journal write the engine queues, so the prune commits after the engine has decided to
    queue the job again and before its write (where a check that reads the row first
    loses the race)."""

    armed = False

    def pop(self, *args: Any) -> Any:
        self.armed = True
        return super().pop(*args)


async def test_a_prune_committed_between_the_revival_and_its_write(
    embedded_server: EmbeddedServer, tmp_path: Path
) -> None:
    async with cancelled(embedded_server, tmp_path) as c:
        m, job, path, events, state = c.m, c.job, c.path, c.events, c.state
        prune = subprocess.Popen(
            [sys.executable, "-c", PRUNE, str(m.journal.path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert prune.stdin is not None and prune.stdout is not None
        stdin, stdout = prune.stdin, prune.stdout
        assert stdout.readline().split() == ["deleted", "1"]
        armed = _Armed(m.intake.cancelled)
        m.intake.cancelled = armed
        commits: list[str] = []

        def commit() -> None:
            if armed.armed and not commits:
                stdin.write("go\n")
                stdin.flush()
                commits.append(stdout.readline().strip())

        writer = m.journal._writer
        submit = writer.submit

        def submit_after_commit(*args: Any, **kwargs: Any) -> Any:
            commit()
            return submit(*args, **kwargs)

        writer.submit = submit_after_commit  # type: ignore[method-assign]
        m.set_bwlimit(None)
        await m.add_paths([str(path)])
        await m.wait_idle()
        assert prune.wait(timeout=30) == 0
    assert commits == ["committed"]  # the race was run: the prune committed mid-revival
    journal = Journal(state)
    try:
        rows = journal.jobs()
    finally:
        journal.close()
    said = [e.message for e in events if isinstance(e, LogMessage)]
    # Uploaded as a new job with its own row: `status` shows it, and it could resume.
    assert [(r.path, r.state) for r in rows] == [(os.fsencode(path), JobState.DONE)], said
    assert rows[0].id != job.id
    assert _stored_equals(embedded_server, rows[0].upload_id, path)
    assert any("pruned" in s and "uploading it anew" in s for s in said), said
