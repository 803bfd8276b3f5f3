"""A file cancelled in one session and queued again in a later one resumes its upload."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from synapse_tui.engine.events import Event, JobState, LogMessage
from synapse_tui.engine.journal import Journal
from synapse_tui.engine.protocol import Credentials, ProtocolClient
from synapse_tui.engine.scheduler import EngineOptions, UploadManager
from tests.harness.embedded import EmbeddedServer
from tests.harness.proxy import FaultProxy, RequestRecord

CHUNK = 64 * 1024
SIZE = 32 * CHUNK


async def until(condition: Callable[[], object], what: str, limit: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not condition():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


@asynccontextmanager
async def counting_proxy(server: EmbeddedServer) -> AsyncIterator[FaultProxy]:
    """The embedded backend behind a proxy that records every request it forwards."""
    proxy = FaultProxy("127.0.0.1", server.port)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop()


def manager(
    url: str, token: str, state: Path, events: list[Event], bwlimit: float | None = None
) -> UploadManager:
    options = EngineOptions(
        host=url, chunk_size=CHUNK, tick=0.05, backoff_base=0.01, strategy="chunked"
    )
    options.bwlimit = bwlimit
    client = ProtocolClient(url, Credentials(access_token=token))
    return UploadManager(client, Journal(state), options, [events.append])


def chunk_bytes(record: RequestRecord) -> tuple[int, int]:
    """(start, length) of a chunk PUT, from its Content-Range."""
    value = next(v for k, v in record.headers.items() if k.lower() == "content-range")
    first, last = value.split(" ")[1].split("/")[0].split("-")
    return int(first), int(last) - int(first) + 1


def creates(records: list[RequestRecord]) -> list[RequestRecord]:
    """Requests that create an upload (to the collection URL, not one upload's)."""
    return [r for r in records if r.method in ("PUT", "POST") and r.path.endswith("upload/")]


async def cancel_part_way(url: str, token: str, src: Path, state: Path) -> int:
    """Session 1: upload part of `src`, cancel, close. The bytes the server holds."""
    events: list[Event] = []
    m = manager(url, token, state, events, bwlimit=512 * 1024)
    async with m:
        await m.add_paths([str(src)])
        await until(lambda: m.jobs, "the job")
        job = next(iter(m.jobs.values()))
        await until(lambda: job.offset >= 4 * CHUNK, "a few chunks")
        m.cancel(job.id)
        await until(lambda: job.state == JobState.CANCELLED, "the cancel")
        upload_url = job.upload_url
    m.journal.close()
    assert upload_url is not None
    async with httpx.AsyncClient() as http:
        answer = await http.get(upload_url, headers={"Synapse-Access-Token": f"Token {token}"})
    answer.raise_for_status()
    held = int(answer.json()["offset"])
    assert 0 < held < SIZE
    return held


def uploads_of(server: EmbeddedServer) -> list[dict[str, object]]:
    answer = httpx.get(f"{server.url}/chunked_upload/", headers=server.headers())
    answer.raise_for_status()
    body = answer.json()
    return list(body["results"] if isinstance(body, dict) else body)


async def test_a_cancelled_file_queued_in_a_new_session_resumes_its_upload(
    embedded_server: EmbeddedServer, tmp_path: Path
) -> None:
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(SIZE))
    state = tmp_path / "state"
    async with counting_proxy(embedded_server) as proxy:
        url = proxy.url + "/api"
        held = await cancel_part_way(url, embedded_server.token, src, state)
        before = len(proxy.requests)

        events: list[Event] = []  # session 2: a new manager on the same state folder
        async with manager(url, embedded_server.token, state, events) as m:
            await m.add_paths([str(src)])
            await m.wait_idle()
        m.journal.close()
        later = proxy.requests[before:]

    puts = [chunk_bytes(r) for r in later if r.method == "PUT"]
    assert not creates(later), "a second upload was created"
    assert puts[0][0] == held, "the upload did not go on from the server's offset"
    assert sum(length for _, length in puts) == SIZE - held  # only the remaining bytes
    uploads = uploads_of(embedded_server)
    assert len(uploads) == 1
    assert uploads[0]["status"] == 2
    stored = embedded_server.backend.store.path_for(str(uploads[0]["id"])).read_bytes()
    assert hashlib.md5(stored).hexdigest() == hashlib.md5(src.read_bytes()).hexdigest()
    journal = Journal(state)
    try:
        rows = journal.jobs()
        assert [r.state for r in rows] == [JobState.DONE], rows[-1].last_error  # one job
    finally:
        journal.close()
    notes = [e.message for e in events if isinstance(e, LogMessage)]
    assert any("resuming its cancelled upload" in n for n in notes), notes


async def test_a_cancelled_upload_the_server_lost_starts_again_with_one_line(
    embedded_server: EmbeddedServer, tmp_path: Path
) -> None:
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(SIZE))
    state = tmp_path / "state"
    async with counting_proxy(embedded_server) as proxy:
        url = proxy.url + "/api"
        await cancel_part_way(url, embedded_server.token, src, state)
        embedded_server.clock.advance(2 * 86400)  # the partial upload expired meanwhile
        before = len(proxy.requests)

        events: list[Event] = []
        async with manager(url, embedded_server.token, state, events) as m:
            await m.add_paths([str(src)])
            await m.wait_idle()
        m.journal.close()
        later = proxy.requests[before:]

    (new,) = creates(later)  # one new upload, from byte 0, and every byte in it
    puts = [chunk_bytes(r) for r in later[later.index(new) :] if r.method == "PUT"]
    assert puts[0][0] == 0 and sum(length for _, length in puts) == SIZE
    gone = [
        e.message
        for e in events
        if isinstance(e, LogMessage) and e.level == "warning" and "gone" in e.message
    ]
    assert len(gone) == 1, gone
    assert "starting a new upload" in gone[0]
    done = [u for u in uploads_of(embedded_server) if u["status"] == 2]
    assert len(done) == 1
    stored = embedded_server.backend.store.path_for(str(done[0]["id"])).read_bytes()
    assert hashlib.md5(stored).hexdigest() == hashlib.md5(src.read_bytes()).hexdigest()
