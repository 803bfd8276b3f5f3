"""A presigned file cancelled part-way and queued again (in a later session or the same one)
goes on with its key and multipart upload: only the parts without an ETag are sent."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from synapse_tui.engine import presigned
from synapse_tui.engine.events import Event, JobState, LogMessage
from synapse_tui.engine.journal import Journal
from synapse_tui.engine.scheduler import UploadManager
from tests.faults.helpers import make_file, make_manager
from tests.harness.embedded import EmbeddedServer
from tests.harness.moto import MotoServer
from tests.presigned.conftest import PART
from tests.presigned.test_client import stored_keys

PARTS = 5
SIZE = (PARTS - 1) * PART + 4321


async def until(condition: Callable[[], object], what: str, limit: float = 60.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not condition():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


def grant_rows(state: Path) -> list[tuple[str, str | None, int]]:
    """(file key, upload id, parts with an ETag) of every journaled grant."""
    db = sqlite3.connect(f"file:{state / 'journal.sqlite3'}?mode=ro", uri=True, timeout=10)
    try:
        return [
            (str(key), upload_id, int(etags))
            for key, upload_id, etags in db.execute(
                "SELECT f.file_key, f.upload_id, (SELECT COUNT(*) FROM presigned_parts p"
                " WHERE p.job_id = f.job_id AND p.etag IS NOT NULL) FROM presigned_files f"
            )
        ]
    finally:
        db.close()


def count_puts(m: UploadManager, puts: list[int]) -> None:
    """Each storage PUT's length (instrumentation only: the call goes on)."""
    storage = presigned.service(m).storage
    original = storage.put

    async def counting(url: str, body: AsyncIterator[bytes] | bytes, length: int, md5: str) -> str:
        puts.append(length)
        return await original(url, body, length, md5)

    storage.put = counting  # type: ignore[method-assign]


def engine(
    server: EmbeddedServer, state: Path, events: list[Event], bwlimit: float | None = None
) -> UploadManager:
    return make_manager(
        server.url,
        server.token,
        state,
        events,
        strategy="presigned",
        concurrency=1,
        bwlimit=bwlimit,
    )


async def cancel_part_way(m: UploadManager, big: Path, state: Path) -> int:
    """Upload `big` slowly, cancel once two parts are stored; the parts stored then."""
    await m.add_paths([str(big)])
    await until(lambda: m.jobs, "the job")
    job = next(iter(m.jobs.values()))
    await until(lambda: m.journal.connection is not None and sent_parts(m) >= 2, "two parts")
    m.cancel(job.id)
    await until(lambda: job.state == JobState.CANCELLED, "the cancel")
    await m.journal.settled()
    return sent_parts(m)


def sent_parts(m: UploadManager) -> int:
    m.journal.catch_up()
    try:
        (n,) = m.journal.connection.execute(
            "SELECT COUNT(*) FROM presigned_parts WHERE etag IS NOT NULL"
        ).fetchone()
    except sqlite3.OperationalError:
        return 0
    return int(n)


def resumed_note(events: list[Event]) -> bool:
    return any(
        isinstance(e, LogMessage) and "resuming its cancelled upload" in e.message for e in events
    )


def one_done_job(state: Path) -> None:
    journal = Journal(state)
    try:
        rows = journal.jobs()
    finally:
        journal.close()
    assert [r.state for r in rows] == [JobState.DONE], [(r.state, r.last_error) for r in rows]


async def test_a_cancelled_presigned_file_queued_in_a_later_session_resumes_its_parts(
    s3_server: EmbeddedServer, moto: MotoServer, tmp_path: Path
) -> None:
    big = make_file(tmp_path / "big.bin", SIZE, seed=21)
    state = tmp_path / "state"
    first: list[Event] = []
    m = engine(s3_server, state, first, bwlimit=4 * PART)  # about a part every 0.25 s
    try:
        async with m:
            stored = await cancel_part_way(m, big, state)
    finally:
        m.journal.close()
    assert 2 <= stored < PARTS
    ((key, upload_id, etags),) = grant_rows(state)  # kept with the cancelled job
    assert upload_id is not None and etags == stored

    later: list[Event] = []
    puts: list[int] = []
    m = engine(s3_server, state, later)  # a new session on the same journal
    try:
        async with m:
            count_puts(m, puts)
            await m.add_paths([str(big)])
            await m.wait_idle()
    finally:
        m.journal.close()
    logs = [e for e in later if isinstance(e, LogMessage)]
    assert len(puts) == PARTS - stored, logs  # only the parts the storage lacked
    assert resumed_note(later)
    one_done_job(state)  # the same job went on: no second one
    keys = stored_keys(s3_server)
    assert list(keys) == [key]  # the same key (and multipart upload), confirmed once
    assert moto.object_bytes(key) == big.read_bytes()
    assert grant_rows(state) == []  # done: its URLs left the journal


async def test_a_cancelled_presigned_file_queued_again_in_the_same_session_resumes(
    s3_server: EmbeddedServer, moto: MotoServer, tmp_path: Path
) -> None:
    big = make_file(tmp_path / "big.bin", SIZE, seed=22)
    state = tmp_path / "state"
    events: list[Event] = []
    puts: list[int] = []
    m = engine(s3_server, state, events, bwlimit=4 * PART)
    try:
        async with m:
            stored = await cancel_part_way(m, big, state)
            count_puts(m, puts)
            m.set_bwlimit(None)
            await m.add_paths([str(big)])
            await m.wait_idle()
    finally:
        m.journal.close()
    assert 2 <= stored < PARTS
    assert len(puts) == PARTS - stored, puts
    assert resumed_note(events)
    one_done_job(state)
    (key,) = stored_keys(s3_server)
    assert moto.object_bytes(key) == big.read_bytes()
