"""The backend's I/O path: socket options, uvicorn's buffering, flushing while a body streams."""

from __future__ import annotations

import asyncio
import ctypes
import hashlib
import importlib
import mmap
import os
import socket
import stat
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from synapse_tui.iobuf import aligned_buffer
from synapse_tui.server import files, receive, runner
from synapse_tui.server.app import create_app
from synapse_tui.server.config import ServerConfig
from tests.harness.embedded import EmbeddedServer
from tests.server.helpers import auth, md5, put, raw_chunk, upload_rest, wait_until

MiB = 1 << 20


async def _accepted_nodelay(sock: socket.socket) -> int:
    seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    class Probe(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            conn = transport.get_extra_info("socket")
            seen.set_result(conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            transport.close()

    loop = asyncio.get_running_loop()
    server = await loop.create_server(Probe, sock=sock)
    host, port = sock.getsockname()[:2]
    _reader, writer = await asyncio.open_connection(host, port)
    try:
        return await asyncio.wait_for(seen, 10)
    finally:
        writer.close()
        server.close()
        await server.wait_closed()


def test_accepted_connections_turn_nagle_off() -> None:
    """A response's body must not wait for the client's delayed ACK of its headers."""
    sock = runner.bind("127.0.0.1", 0)
    assert asyncio.run(_accepted_nodelay(sock)) != 0


def test_our_protocol_keeps_more_than_one_read_of_body_buffered(tmp_path: Path) -> None:
    """Reading pauses only past BODY_HIGH_WATER of body waiting for the app, and that is
    our protocol's own limit: uvicorn's module globals are left alone for other servers."""
    from types import SimpleNamespace

    from synapse_tui.server.http_protocol import BODY_HIGH_WATER, LeanHttpToolsProtocol

    before = {}
    for name in ("h11_impl", "httptools_impl", "flow_control"):
        module = importlib.import_module(f"uvicorn.protocols.http.{name}")
        before[name] = module.HIGH_WATER_LIMIT
    runner.uvicorn_config(create_app(ServerConfig(root=tmp_path, tokens=["t"])))
    for name, value in before.items():
        module = importlib.import_module(f"uvicorn.protocols.http.{name}")
        assert value == module.HIGH_WATER_LIMIT, name
    paused: list[int] = []
    proto: Any = LeanHttpToolsProtocol.__new__(LeanHttpToolsProtocol)
    proto.parser = SimpleNamespace(should_upgrade=lambda: False)
    proto.cycle = SimpleNamespace(
        response_complete=False, body=b"", message_event=SimpleNamespace(set=lambda: None)
    )
    proto.flow = SimpleNamespace(pause_reading=lambda: paused.append(len(proto.cycle.body)))
    piece = b"x" * (256 << 10)
    for _ in range(BODY_HIGH_WATER // len(piece)):
        proto.on_body(piece)
    assert paused == [] and len(proto.cycle.body) == BODY_HIGH_WATER  # four reads waiting
    proto.on_body(piece)
    assert paused == [BODY_HIGH_WATER + len(piece)]


def test_a_chunk_reaches_the_disk_while_it_streams(
    embedded_server: EmbeddedServer, client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The syncer flushes what is written before the body is complete, not all at the end."""
    srv = embedded_server
    flushed: list[int] = []
    real = receive._fdatasync

    def recording(fd: int) -> None:
        real(fd)
        flushed.append(os.fstat(fd).st_size)

    monkeypatch.setattr(receive, "_fdatasync", recording)
    data = os.urandom(MiB + 3 * receive.SYNC_BYTES)
    first = put(client, srv.url + "/chunked_upload/", data[:MiB], token=srv.token, total=len(data))
    url = first.json()["url"]
    flushed.clear()
    body_len = 3 * receive.SYNC_BYTES
    req, head, tail = raw_chunk(url, srv.token, body_len, MiB, len(data))
    try:
        req.send(head + data[MiB : MiB + 2 * receive.SYNC_BYTES + 1000])
        # The body is still open: only a flush behind the writer can have run.
        wait_until(lambda: bool(flushed), "a flush while the body streams")
        assert MiB + receive.SYNC_BYTES <= flushed[0] < MiB + body_len
        req.send(data[MiB + 2 * receive.SYNC_BYTES + 1000 :] + tail)
        status, answer = req.response()
    finally:
        req.close()
    assert status == 200 and answer["offset"] == len(data)
    r = client.post(url, data={"md5": md5(data)}, headers=auth(srv.token))
    assert r.status_code == 200
    assert (srv.root / "files" / answer["id"]).read_bytes() == data


def test_a_failed_flush_fails_the_chunk_and_keeps_the_offset(
    embedded_server: EmbeddedServer, client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    srv = embedded_server
    failed = threading.Event()

    def broken(fd: int) -> None:
        failed.set()
        raise OSError(5, "Input/output error")

    data = os.urandom(MiB + 3 * receive.SYNC_BYTES)
    first = put(client, srv.url + "/chunked_upload/", data[:MiB], token=srv.token, total=len(data))
    url, upload_id = first.json()["url"], first.json()["id"]
    monkeypatch.setattr(receive, "_fdatasync", broken)
    body_len = 3 * receive.SYNC_BYTES
    req, head, tail = raw_chunk(url, srv.token, body_len, MiB, len(data))
    try:
        req.send(head + data[MiB : MiB + 2 * receive.SYNC_BYTES + 1000])
        assert failed.wait(10), "the syncer never ran"
        # The server answers 500 at its next batch and may close before the rest is sent.
        try:
            req.send(data[MiB + 2 * receive.SYNC_BYTES + 1000 :] + tail)
            status: int | None = req.response()[0]
        except ConnectionError:
            status = None
    finally:
        req.close()
    assert status in (500, None)
    wait_until(lambda: not srv.backend.sessions.is_writing(upload_id), "the writer to give up")
    path = srv.root / "files" / upload_id
    assert client.get(url, headers=auth(srv.token)).json()["offset"] == MiB
    assert path.stat().st_size == MiB
    monkeypatch.undo()
    done = upload_rest(client, srv, url, data, MiB)
    assert done["checksum"] == md5(data) and path.read_bytes() == data


def test_read_buffers_start_on_a_page_boundary() -> None:
    for size in (1, 4096, 4 * MiB):
        view = aligned_buffer(size)
        assert len(view) == size and not view.readonly
        assert ctypes.addressof(ctypes.c_char.from_buffer(view)) % mmap.PAGESIZE == 0
        view[-1:] = b"x"
        assert hashlib.md5(view).hexdigest() == hashlib.md5(bytes(size - 1) + b"x").hexdigest()


# -- the lean httptools protocol ---------------------------------------------------------------


def test_body_pieces_are_handed_over_as_they_came() -> None:
    from synapse_tui.server.http_protocol import BodyPieces

    one = b"a" * 1000
    pieces = BodyPieces(bytearray(b"xy"))
    assert len(pieces) == 2 and bytes(pieces) == b"xy"
    single = BodyPieces()
    single += one
    assert bytes(single) is one  # no copy for a single piece
    pieces += one
    pieces += b"z"
    assert len(pieces) == 1003 and bytes(pieces) == b"xy" + one + b"z"


async def test_lean_protocol_reads_big_and_delivers_the_body_intact() -> None:
    """On a real socket: small reads for a small request, 1 MiB reads while a body streams
    in, and the app gets every byte."""
    import uvicorn
    from uvicorn.server import ServerState

    from synapse_tui.server.http_protocol import READ_SIZE, SMALL_READ, LeanHttpToolsProtocol

    payload = os.urandom(3 * MiB + 17)
    got = bytearray()
    reads: list[int] = []

    class Recording(LeanHttpToolsProtocol):
        def data_received(self, data: bytes) -> None:
            reads.append(len(data))
            super().data_received(data)

    async def app(scope: dict[str, Any], receive: object, send: object) -> None:
        got.clear()
        while True:
            message = await receive()  # type: ignore[operator]
            got.extend(message.get("body", b""))
            if not message.get("more_body"):
                break
        start = {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", b"2")],
        }
        await send(start)  # type: ignore[operator]
        await send({"type": "http.response.body", "body": b"ok"})  # type: ignore[operator]

    config = uvicorn.Config(app, lifespan="off", log_level="warning")
    config.load()
    loop = asyncio.get_running_loop()
    protocol = Recording(config=config, server_state=ServerState(), app_state={})
    ours, theirs = socket.socketpair()
    transport, _ = await loop.connect_accepted_socket(lambda: protocol, sock=ours)
    try:
        reader, writer = await asyncio.open_connection(sock=theirs)

        async def put(body: bytes) -> None:
            head = f"PUT /x HTTP/1.1\r\nHost: t\r\nContent-Length: {len(body)}\r\n\r\n"
            writer.write(head.encode() + body)
            await writer.drain()
            status = await asyncio.wait_for(reader.readline(), 30)
            assert status.startswith(b"HTTP/1.1 200")
            await asyncio.wait_for(reader.readuntil(b"ok"), 30)
            assert hashlib.md5(got).hexdigest() == hashlib.md5(body).hexdigest()

        assert transport.max_size == SMALL_READ  # type: ignore[attr-defined]
        await put(b"s" * 20_000)
        assert transport.max_size == SMALL_READ  # type: ignore[attr-defined]
        await put(payload)
        assert max(reads) > SMALL_READ and max(reads) <= READ_SIZE  # it grew for the body
        await put(b"t" * 100)
        assert transport.max_size == SMALL_READ  # type: ignore[attr-defined]  # and shrank
        writer.close()
    finally:
        transport.close()


def test_the_backend_runs_the_lean_protocol_when_httptools_is_there() -> None:
    pytest.importorskip("httptools")
    from synapse_tui.server.http_protocol import LeanHttpToolsProtocol

    assert runner.http_protocol() is LeanHttpToolsProtocol


def test_open_at_cuts_the_file_to_the_start_and_stores_privately(tmp_path: Path) -> None:
    path = tmp_path / "upload"
    for start in (0, 3):
        path.write_bytes(b"unacknowledged bytes")
        fd = files.open_at(path, start)
        try:
            os.pwrite(fd, b"new", start)
        finally:
            os.close(fd)
        assert path.read_bytes() == b"unacknowledged bytes"[:start] + b"new"
    fresh = tmp_path / "fresh"
    files.store_at(fresh, 0, [b"ab", memoryview(b"cd")])
    assert fresh.read_bytes() == b"abcd" and stat.S_IMODE(fresh.stat().st_mode) == 0o600
