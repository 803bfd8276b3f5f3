"""A deliberate pause finishes the chunk in flight when that is quick, and cuts it when not."""

from __future__ import annotations

import asyncio
import hashlib
import time
from pathlib import Path

from synapse_tui.engine.events import Event, JobState
from synapse_tui.engine.scheduler import UploadManager
from tests.faults.helpers import make_file, make_manager
from tests.harness.embedded import EmbeddedServer

KIB = 1024


async def _until(check: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def _mid_chunk(m: UploadManager) -> int:
    """Wait until the only job is part-way into a chunk after the first; its id."""
    await _until(lambda: m.jobs and next(iter(m.jobs.values())).offset > 0, timeout=40)
    job = next(iter(m.jobs.values()))
    await _until(lambda: job.sent > job.offset + 16 * KIB)
    return job.id


async def test_a_pause_lets_a_quick_chunk_finish(
    embedded_server: EmbeddedServer, tmp_path: Path
) -> None:
    chunk = 128 * KIB
    f = make_file(tmp_path / "a.bin", 2048 * KIB)
    events: list[Event] = []
    m = make_manager(
        embedded_server.url,
        embedded_server.token,
        tmp_path / "st",
        events,
        chunk_size=chunk,
        bwlimit=512 * KIB,
        pause_grace=5.0,
    )
    async with m:
        await m.add_paths([str(f)])
        job_id = await _mid_chunk(m)
        job = m.jobs[job_id]
        boundary = job.offset + chunk
        m.pause(job_id)
        await _until(lambda: job.state == JobState.PAUSED and job.task.done())  # type: ignore[union-attr]
        assert job.offset == boundary  # the chunk in flight was finished, not thrown away
        assert not job.pause_cut
    m.journal.close()


async def test_a_pause_cuts_a_chunk_that_would_take_too_long(
    embedded_server: EmbeddedServer, tmp_path: Path
) -> None:
    chunk = 2048 * KIB  # 8 s at the limit: longer than the grace
    f = make_file(tmp_path / "a.bin", 2 * chunk)
    events: list[Event] = []
    m = make_manager(
        embedded_server.url,
        embedded_server.token,
        tmp_path / "st",
        events,
        chunk_size=chunk,
        bwlimit=256 * KIB,
        pause_grace=0.5,
        stall_timeout=60.0,  # only the pause may end this request
        response_timeout=60.0,
    )
    async with m:
        await m.add_paths([str(f)])
        await _until(lambda: any(j.state == JobState.UPLOADING for j in m.jobs.values()))
        job = next(iter(m.jobs.values()))
        await asyncio.sleep(0.3)  # into the first chunk's request
        started = time.monotonic()
        m.pause(job.id)
        await _until(lambda: job.state == JobState.PAUSED, timeout=5.0)
        assert time.monotonic() - started < 3.0
        assert job.pause_cut and job.offset == 0  # cut: that chunk is sent again later
        m.set_bwlimit(None)
        m.resume(job.id)
        await _until(lambda: job.state == JobState.DONE)
    m.journal.close()
    assert job.md5 == hashlib.md5(f.read_bytes()).hexdigest()
