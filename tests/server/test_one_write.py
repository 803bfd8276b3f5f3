"""The lean httptools protocol sends an answer's head and its first body piece in one write."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

pytest.importorskip("httptools")

App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


class _Counting:
    """A transport that records what the protocol writes (and passes everything on)."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))
        self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


@asynccontextmanager
async def _serve(
    app: App,
) -> AsyncIterator[tuple[list[bytes], asyncio.StreamReader, asyncio.StreamWriter]]:
    import uvicorn
    from uvicorn.server import ServerState

    from synapse_tui.server.http_protocol import LeanHttpToolsProtocol

    writes: list[bytes] = []

    class Recording(LeanHttpToolsProtocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            counting = _Counting(transport)
            counting.writes = writes
            super().connection_made(counting)  # type: ignore[arg-type]

    config = uvicorn.Config(app, lifespan="off", log_level="critical")
    config.load()
    loop = asyncio.get_running_loop()
    protocol = Recording(config=config, server_state=ServerState(), app_state={})
    ours, theirs = socket.socketpair()
    transport, _ = await loop.connect_accepted_socket(lambda: protocol, sock=ours)
    reader, writer = await asyncio.open_connection(sock=theirs)
    try:
        yield writes, reader, writer
    finally:
        writer.close()
        transport.close()


async def _answer(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return head, await asyncio.wait_for(reader.readexactly(length), 10)


def _app(pieces: list[bytes], fail_after_start: bool = False) -> App:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        while (await receive()).get("more_body"):
            pass
        size = str(sum(len(p) for p in pieces)).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", size)]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        if fail_after_start:
            raise RuntimeError("the app failed after starting its answer")
        for i, piece in enumerate(pieces):
            more = i < len(pieces) - 1
            await send({"type": "http.response.body", "body": piece, "more_body": more})

    return app


async def test_a_json_answer_is_one_write_with_head_and_body() -> None:
    async with _serve(_app([b'{"id": 1}'])) as (writes, reader, writer):
        for _ in range(2):  # and again on the same connection
            writes.clear()
            writer.write(b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc")
            head, body = await _answer(reader)
            assert head.startswith(b"HTTP/1.1 200") and body == b'{"id": 1}'
            assert len(writes) == 1
            assert writes[0] == head + body


async def test_a_streamed_answer_sends_the_head_with_its_first_piece() -> None:
    pieces = [b"first-", b"second-", b"third"]
    async with _serve(_app(pieces)) as (writes, reader, _writer):
        _writer.write(b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n")
        head, body = await _answer(reader)
        assert body == b"first-second-third"
        assert writes == [head + b"first-", b"second-", b"third"]


async def test_a_head_request_gets_its_head_and_the_connection_goes_on() -> None:
    async with _serve(_app([b"12345"])) as (writes, reader, writer):
        writer.write(b"HEAD /x HTTP/1.1\r\nHost: t\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 200") and b"content-length: 5" in head
        assert writes == [head]
        writer.write(b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n")
        _head, body = await _answer(reader)
        assert body == b"12345"


async def test_an_app_failing_after_its_head_still_sends_the_head_then_closes() -> None:
    async with _serve(_app([b"never"], fail_after_start=True)) as (writes, reader, writer):
        writer.write(b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 200")
        assert await asyncio.wait_for(reader.read(), 10) == b""  # closed, as uvicorn does
        assert writes == [head]
