"""A hostile server against the client (issue 18, "Client: progress and truth").

Each test runs the engine (or its protocol client) against a server on 127.0.0.1 that
lies about progress, answers 409, never completes, paginates, sends escape sequences,
drip-feeds or floods its answers: the small hostile server of `tests/faults/hostile.py`,
or the embedded backend behind the fault proxy where the fault is the backend's own.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
import zlib
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from synapse_tui.engine.errors import (
    Busy,
    OffsetMismatch,
    OriginError,
    ProtocolError,
    ServerRejected,
    TransientError,
)
from synapse_tui.engine.events import JobState
from synapse_tui.engine.names import upload_filename
from synapse_tui.engine.protocol import Credentials, ProtocolClient, Timeouts
from synapse_tui.engine.transport import MAX_ANSWER_BYTES
from tests.faults.crash import Cli
from tests.faults.helpers import (
    CHUNK,
    FAST_TIMEOUTS,
    TimedProxy,
    make_file,
    run_engine,
    uploads_named,
)
from tests.faults.hostile import HostileServer, Request, Upload, json_answer
from tests.harness.embedded import EmbeddedServer
from tests.harness.proxy import Fault, Rule, ThreadedFaultProxy

TOKEN = "tok-hostile"
ESC_DETAIL = "\x1b]0;owned\x07\x1b]52;c;ZXZpbA==\x07\x1b[2Jbad chunk"


def ledger_count(state: Path) -> int:
    db = sqlite3.connect(state / "journal.sqlite3")
    try:
        return int(db.execute("SELECT count(*) FROM ledger").fetchone()[0])
    finally:
        db.close()


def client_for(url: str, timeouts: Timeouts = FAST_TIMEOUTS) -> ProtocolClient:
    return ProtocolClient(url, Credentials(access_token=TOKEN), timeouts=timeouts)


# -- 1. an offset that never moves ----------------------------------------------------------


@pytest.mark.parametrize(
    ("keep", "drop_to_zero", "stuck_at"),
    [(0, False, 0), (1, False, CHUNK), (None, True, 0)],
    ids=["keeps-nothing", "stuck-at-chunk-start", "drops-back-to-0"],
)
async def test_an_offset_that_never_moves_spends_the_budget_and_pauses(
    tmp_path: Path, keep: int | None, drop_to_zero: bool, stuck_at: int
) -> None:
    """The server answers 200 to every chunk but keeps nothing new (or drops back to 0):
    each such chunk costs an attempt, and once the budget is spent the file is paused,
    resumable, with the reason. Before, the same chunk was re-sent forever."""
    f = make_file(tmp_path / "stuck.bin", 4 * CHUNK)
    async with HostileServer() as server:
        server.keep, server.drop_to_zero = keep, drop_to_zero
        out = await run_engine(server.url, TOKEN, [f], tmp_path / "state", retries=3, timeout=30)
    assert out.done == [], out.events
    assert out.states() == [JobState.PAUSED]
    [failed] = out.failed
    assert failed.resumable
    assert f"server does not keep the data (offset stuck at {stuck_at})" in failed.error
    # Bounded: the budget (3 retries) and the chunks that did move, nothing like "forever".
    assert len(server.of("PUT")) <= 2 * (3 + 1) + 4


# -- 2. 409: another request writes to this upload ------------------------------------------


async def test_409_from_the_backend_while_our_timed_out_put_still_writes(
    embedded_server: EmbeddedServer, tmp_path: Path
) -> None:
    """The embedded backend gets PUT 2 minus its last byte; the client times out, reads the
    offset, sends the chunk again and meets the backend's own 409 ("Another request is
    writing to this upload"). That is "busy": wait, read the state, go on, and the file is
    done once the first PUT ends. Before, the 409 failed the file for good."""
    f = make_file(tmp_path / "busy.bin", 3 * CHUNK)
    async with TimedProxy("127.0.0.1", embedded_server.port) as proxy:
        proxy.hold_put(2, release_on_get=False)

        async def release_after_a_409(_m: object) -> None:
            async with asyncio.timeout(20):
                while not any(r.status == 409 for r in proxy.puts()):
                    await asyncio.sleep(0.01)
            proxy.release.set()

        out = await run_engine(
            proxy.url + "/api",
            embedded_server.token,
            [f],
            tmp_path / "state",
            during=release_after_a_409,
            response_timeout=0.5,
            settle_delay=0.05,
            retries=30,
        )
    assert any(r.status == 409 for r in proxy.puts())
    assert len(out.done) == 1 and out.failed == [], out.events
    assert any("409" in m for m in out.logs("warning")), out.logs()
    named = uploads_named(embedded_server.url, embedded_server.token, f)
    assert [u["status"] for u in named] == [2], named
    assert named[0]["offset"] == f.stat().st_size


async def test_409_that_never_ends_pauses_the_file_and_does_not_fail_it(tmp_path: Path) -> None:
    """A server busy with the upload forever: every attempt honours Retry-After and reads
    the state; when the budget is spent the file is paused (resumable), not failed."""
    f = make_file(tmp_path / "busy-forever.bin", 3 * CHUNK)

    async def busy(request: Request, writer: asyncio.StreamWriter) -> bool:
        if request.method != "PUT" or request.path.endswith("/chunked_upload/"):
            return False
        detail = {"detail": "Another request is writing to this upload"}
        writer.write(json_answer(409, detail, "Retry-After: 0.2\r\n"))
        return True

    async with HostileServer() as server:
        server.faults.append(busy)
        out = await run_engine(server.url, TOKEN, [f], tmp_path / "state", retries=2)
    assert out.states() == [JobState.PAUSED]
    [failed] = out.failed
    assert failed.resumable and "409" in failed.error
    puts = [r for r in server.requests if r.method == "PUT"]
    assert len(puts) == 1 + 3  # the creating PUT, then one per attempt of the budget
    # Retry-After (0.2 s) is waited after each 409 but the last (the budget is spent there).
    assert out.elapsed >= 0.4


# -- 3. a finalize answered 200 that does not complete --------------------------------------


@pytest.mark.parametrize("size", [3 * CHUNK + 7, 1000], ids=["chunked", "whole-file"])
async def test_finalize_answered_incomplete_is_never_done(tmp_path: Path, size: int) -> None:
    """Finalize (or the whole-file POST) answers 200 with status 1 and no completed_at, and
    the server's state agrees: not done, not in the ledger, paused with the reason; a
    resume against a server that then completes finishes it, one upload in all."""
    f = make_file(tmp_path / "incomplete.bin", size)
    state = tmp_path / "state"
    async with HostileServer() as server:
        server.finalize_incomplete = None  # never completes
        out = await run_engine(server.url, TOKEN, [f], state, retries=2)
        assert out.done == [], out.events
        assert out.states() == [JobState.PAUSED]
        [failed] = out.failed
        assert failed.resumable and "has not completed the upload" in failed.error
        assert "status 1, no completed_at" in failed.error
        assert ledger_count(state) == 0

        server.finalize_incomplete = 0  # now it completes
        again = await run_engine(server.url, TOKEN, [], state, resume=True)
        assert len(again.done) == 1, again.events
        [upload] = server.named(upload_filename(bytes(f)))
        assert upload.status == 2 and bytes(upload.data) == f.read_bytes()
        assert ledger_count(state) == 1


async def test_finalize_answered_incomplete_is_confirmed_by_the_state(tmp_path: Path) -> None:
    """Two finalize answers say status 1; the client reads the state after each, and is
    done only once the server says complete."""
    f = make_file(tmp_path / "confirm.bin", 2 * CHUNK + 1)
    async with HostileServer() as server:
        server.finalize_incomplete = 2
        out = await run_engine(server.url, TOKEN, [f], tmp_path / "state", retries=4)
        assert len(out.done) == 1, out.events
        [upload] = server.named(upload_filename(bytes(f)))
        assert upload.status == 2
        finalize_posts = [r for r in server.of("POST") if "/chunked_upload/" in r.path]
        assert len(finalize_posts) == 3
        gets = [r for r in server.of("GET") if r.path.endswith(f"{upload.id}/")]
        assert len(gets) >= 2  # each incomplete answer was checked against the state


# -- 4. recovery through a paginated upload list --------------------------------------------


@pytest.mark.parametrize(
    ("size", "method"), [(1000, "POST"), (3 * CHUNK, "PUT")], ids=["whole-file", "chunked"]
)
async def test_recovery_reads_every_page_of_the_upload_list(
    tmp_path: Path, size: int, method: str
) -> None:
    """The creating request is applied but its answer lost; the server lists uploads two
    per page and the new one is on page 4. The client follows `next`, finds it, and sends
    nothing twice. Before, it read page 1 only and uploaded the file again."""
    f = make_file(tmp_path / "paged.bin", size)
    async with HostileServer() as server:
        server.page_size = 2
        for i in range(6):
            other = Upload(f"other{i}", f"other-{i}.bin", bytearray(b"x"), 2)
            server.uploads[other.id] = other
        fired: list[Request] = []

        async def lose_answer(request: Request, writer: asyncio.StreamWriter) -> bool:
            """The first creating request is applied, then the connection closes unanswered."""
            if fired or request.method != method or not request.path.endswith("/chunked_upload/"):
                return False
            fired.append(request)
            server.apply(request)
            raise ConnectionResetError  # the server closes the connection, no answer

        server.faults.append(lose_answer)
        out = await run_engine(server.url, TOKEN, [f], tmp_path / "state")
        assert len(out.done) == 1, out.events
        named = server.named(upload_filename(bytes(f)))
        assert len(named) == 1, [(u.id, u.status, len(u.data)) for u in named]
        assert named[0].status == 2 and bytes(named[0].data) == f.read_bytes()
        pages = [r.target for r in server.of("GET") if "page=" in r.target]
        assert "page=4" in " ".join(pages)


def paged_client(pages: Callable[[httpx.Request], Mapping[str, object]]) -> ProtocolClient:
    return ProtocolClient(
        "http://backend.test/api",
        Credentials(access_token=TOKEN),
        transport=httpx.MockTransport(lambda r: httpx.Response(200, json=pages(r))),
    )


async def test_upload_list_pages_are_bounded_and_stay_in_the_origin() -> None:
    """A `next` that never ends, that links back, or that leaves the origin: the list stops
    with an error instead of looping, and the token never leaves the origin."""
    item = {"id": "u", "url": "http://backend.test/api/chunked_upload/u/", "offset": 1}

    def endless(r: httpx.Request) -> dict[str, object]:
        n = int(r.url.params.get("page", "1"))
        return {"next": f"http://backend.test/api/chunked_upload/?page={n + 1}", "results": []}

    with pytest.raises(ProtocolError, match="pages"):
        await paged_client(endless).list_uploads()
    loop = {"next": "http://backend.test/api/chunked_upload/", "results": [item]}
    with pytest.raises(ProtocolError, match="link back"):
        await paged_client(lambda r: loop).list_uploads()
    away = {"next": "http://elsewhere.test/steal", "results": [item]}
    with pytest.raises(OriginError):
        await paged_client(lambda r: away).list_uploads()


# -- 5. escape sequences in the server's text -----------------------------------------------


def test_escape_sequences_in_an_error_detail_are_escaped_everywhere(
    embedded_server: EmbeddedServer, tmp_path: Path
) -> None:
    """A chunk refused with a detail carrying OSC title / clipboard sequences and a screen
    clear: stderr, `status` and the journal get the text escaped, never the raw ESC/BEL."""
    f = make_file(tmp_path / "esc.bin", 3 * CHUNK)
    body = json.dumps({"detail": ESC_DETAIL}).encode()
    with ThreadedFaultProxy("127.0.0.1", embedded_server.port) as proxy:
        proxy.add_rule(Rule(Fault("status", status=400, body=body), method="PUT"))
        cli = Cli(proxy.url + "/api", embedded_server.token, tmp_path / "state")
        upload = cli.run("upload", str(f), "--chunk-size", "64K")
        status = cli.run("status")
    assert upload.returncode != 0
    assert "\\e]0;owned" in upload.stderr, upload.stderr
    assert "\\e]0;owned" in status.stdout, status.stdout
    for text in (upload.stdout, upload.stderr, status.stdout, status.stderr):
        assert "\x1b" not in text and "\x07" not in text
    [row] = cli.journal_rows()
    assert "\x1b" not in row["last_error"] and "\\e]52;c;" in row["last_error"]


# -- 6. drip-fed answers and endless interim answers ----------------------------------------


async def drip_forever(writer: asyncio.StreamWriter, status: int = 404) -> None:
    """A chunked answer of one byte every 20 ms, never ending: each read succeeds."""
    writer.write(b"HTTP/1.1 %d X\r\nTransfer-Encoding: chunked\r\n\r\n" % status)
    while True:
        writer.write(b"1\r\n \r\n")
        await writer.drain()
        await asyncio.sleep(0.02)


async def test_a_drip_fed_start_up_check_ends_at_its_deadline() -> None:
    async def drip(request: Request, writer: asyncio.StreamWriter) -> bool:
        await drip_forever(writer)
        return True

    timeouts = Timeouts(connect=3, read=5, write=5, pool=5, check=0.5)
    async with HostileServer() as server:
        server.faults.append(drip)
        client = client_for(server.url, timeouts)
        started = time.monotonic()
        with pytest.raises(TransientError, match=r"start-up check: no complete answer within"):
            async with asyncio.timeout(15):
                await client.ping()
        assert time.monotonic() - started < 4
        await client.aclose()


async def test_an_endless_stream_of_100_continue_ends() -> None:
    async def interim(request: Request, writer: asyncio.StreamWriter) -> bool:
        while True:
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            await writer.drain()
            await asyncio.sleep(0.01)

    timeouts = Timeouts(connect=3, read=5, write=5, pool=5)  # check: the default 20 s
    async with HostileServer() as server:
        server.faults.append(interim)
        client = client_for(server.url, timeouts)
        started = time.monotonic()
        with pytest.raises(TransientError, match=r"start-up check: .*interim"):
            async with asyncio.timeout(15):
                await client.ping()
        assert time.monotonic() - started < 4
        await client.aclose()


async def test_a_drip_fed_finalize_answer_ends_at_its_deadline(tmp_path: Path) -> None:
    """Finalize's answer drips in forever: each attempt ends at finalize's deadline with a
    line that says so, and the file is left paused once the budget is spent."""
    f = make_file(tmp_path / "drip-finalize.bin", 2 * CHUNK)

    async def drip(request: Request, writer: asyncio.StreamWriter) -> bool:
        if request.method != "POST":
            return False
        await drip_forever(writer, 200)
        return True

    timeouts = Timeouts(connect=3, read=5, write=5, pool=5, finalize_base=0.5)
    async with HostileServer() as server:
        server.faults.append(drip)
        out = await run_engine(
            server.url, TOKEN, [f], tmp_path / "state", retries=2, timeouts=timeouts, timeout=30
        )
    assert out.states() == [JobState.PAUSED]
    [failed] = out.failed
    assert "finalize: no complete answer within 0.5s" in failed.error
    assert any("finalize: no complete answer" in m for m in out.logs("warning"))


# -- 7. huge answers ------------------------------------------------------------------------


def big_json(url: str, size: int) -> Callable[[], AsyncIterator[bytes]]:
    """A valid upload-state JSON object of about `size` bytes, made piece by piece."""

    async def pieces() -> AsyncIterator[bytes]:
        yield b'{"id": "big", "url": "%s/chunked_upload/big/", "offset": 0,' % url.encode()
        yield b' "pad": "'
        for _ in range(size >> 20):
            yield b"x" * (1 << 20)
        yield b'"}'

    return pieces


async def big_answer(url: str, writer: asyncio.StreamWriter, how: str, size: int) -> None:
    if how == "length":
        opening = b'{"id": "big", "url": "%s/chunked_upload/big/", "offset": 0,' % url.encode()
        length = len(opening) + len(b' "pad": "') + (size >> 20 << 20) + len(b'"}')
        head = b"HTTP/1.1 200 X\r\nContent-Length: %d\r\n\r\n" % length
        writer.write(head)
        async for piece in big_json(url, size)():
            writer.write(piece)
            await writer.drain()
    elif how == "chunked":
        writer.write(b"HTTP/1.1 200 X\r\nTransfer-Encoding: chunked\r\n\r\n")
        async for piece in big_json(url, size)():
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
        writer.write(b"0\r\n\r\n")
    else:  # a gzip bomb: a few hundred kB that decode to `size`
        packer = zlib.compressobj(wbits=zlib.MAX_WBITS | 16)
        packed = b"".join([packer.compress(p) async for p in big_json(url, size)()])
        packed += packer.flush()
        head = b"HTTP/1.1 200 X\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n"
        writer.write(head % len(packed) + packed)
    await writer.drain()


@pytest.mark.parametrize(
    ("how", "size"),
    [("length", 100 << 20), ("chunked", 8 << 20), ("gzip", 100 << 20)],
)
async def test_a_huge_answer_is_refused_at_the_cap(how: str, size: int) -> None:
    """A 100 MB JSON answer (declared, chunked, or a gzip bomb): refused with a clear error
    once past the cap, not read into memory."""

    async def huge(request: Request, writer: asyncio.StreamWriter) -> bool:
        await big_answer(server.url, writer, how, size)
        return True

    async with HostileServer() as server:
        server.faults.append(huge)
        client = client_for(server.url)
        with pytest.raises(ProtocolError, match=rf"upload state: .*{MAX_ANSWER_BYTES}"):
            async with asyncio.timeout(30):
                await client.state(server.url + "/chunked_upload/big/")
        await client.aclose()


async def test_the_journal_keeps_only_the_fields_it_needs(tmp_path: Path) -> None:
    """Answers carrying 200 kB of extra fields: the journal's result holds six fields."""
    f = make_file(tmp_path / "fields.bin", 2 * CHUNK)
    state = tmp_path / "state"
    async with HostileServer() as server:
        plain_info = server.info

        def padded(upload: Upload) -> dict[str, Any]:
            return {**plain_info(upload), "pad": "x" * 200_000}

        server.info = padded  # type: ignore[method-assign]  # this server's answers, padded
        out = await run_engine(server.url, TOKEN, [f], state)
    assert len(out.done) == 1, out.events
    db = sqlite3.connect(state / "journal.sqlite3")
    try:
        [(result,)] = db.execute("SELECT result FROM jobs").fetchall()
    finally:
        db.close()
    kept = json.loads(result)
    assert set(kept) == {"id", "url", "offset", "status", "checksum", "completed_at"}
    assert kept["status"] == 2 and kept["offset"] == 2 * CHUNK


# -- errors recognised by status and stable fields ------------------------------------------


def answering(status: int, body: object, **headers: str) -> ProtocolClient:
    return ProtocolClient(
        "http://backend.test/api",
        Credentials(access_token=TOKEN),
        transport=httpx.MockTransport(lambda r: httpx.Response(status, json=body, headers=headers)),
    )


async def state_of(client: ProtocolClient) -> object:
    return await client.state("http://backend.test/api/chunked_upload/u/")


async def test_errors_are_recognised_by_status_and_fields_not_only_text() -> None:
    """An offset mismatch in another wording is still one (its `expected_offset` says so);
    409 is busy with its Retry-After; the same words without the field are a refusal."""
    translated = {"detail": "Les offsets ne correspondent pas", "expected_offset": 7}
    with pytest.raises(OffsetMismatch) as mismatch:
        await state_of(answering(400, translated))
    assert mismatch.value.expected == 7
    with pytest.raises(Busy) as busy:
        await state_of(answering(409, {"detail": "locked"}, **{"Retry-After": "3"}))
    assert busy.value.wait == 3.0 and busy.value.retry_after is None
    with pytest.raises(ServerRejected):
        await state_of(answering(400, {"detail": "Offsets do not match"}))


async def test_collection_names_from_the_server_are_escaped() -> None:
    """Collection and spec names are server text shown in terminals: escaped on the way in."""
    from synapse_tui.engine.collections import fetch_collection, list_collections

    one = {"id": 3, "name": "imgs\x1b]0;t\x07", "file_specifications": [{"name": "a\x1b[2J"}]}
    client = answering(200, one)
    collection = await fetch_collection(client, 3)
    assert (collection.name, collection.specs) == ("imgs\\e]0;t\\x07", ("a\\e[2J",))
    [listed] = await list_collections(answering(200, {"results": [one]}))
    assert "\x1b" not in listed.name + "".join(listed.specs)
