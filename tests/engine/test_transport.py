"""The engine's lean HTTP/1.1 transport against scripted servers on loopback.

Each server here speaks raw bytes, so the tests pin what the transport does with
keep-alive, framing, closes, timeouts and errors, whatever a real backend does.
(The end-to-end tests run it against both real backends.)
"""

from __future__ import annotations

import asyncio
import gzip
import socket
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from synapse_tui.engine.transport import EAGER_LIMIT, LeanTransport, _Connection

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Server:
    """A loopback server running `handler` per connection; counts connections."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.open_now = 0
        self.most_open = 0
        self.server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        try:
            await self.handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.open_now -= 1
            writer.close()

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, dict[bytes, bytes], bytes]:
    """One request: its request line, headers (lower-case names) and body."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head[:-4].split(b"\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    body = b""
    if b"content-length" in headers:
        body = await reader.readexactly(int(headers[b"content-length"]))
    elif headers.get(b"transfer-encoding") == b"chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            body += await reader.readexactly(size)
            await reader.readexactly(2)
    return lines[0], headers, body


def answer(body: bytes, *extra: bytes) -> bytes:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n" % len(body)
    return head + b"".join(h + b"\r\n" for h in extra) + b"\r\n" + body


def echo_forever() -> Handler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            line, _headers, body = await read_request(reader)
            writer.write(answer(line + b"|" + body))
            await writer.drain()

    return handler


async def test_keeps_one_connection_alive_across_requests() -> None:
    server = Server(echo_forever())
    async with server as url, httpx.AsyncClient(transport=LeanTransport()) as client:
        first = await client.get(url + "/a?x=1")
        second = await client.post(url + "/b", content=b"payload")
    assert first.status_code == 200 and first.text == "GET /a?x=1 HTTP/1.1|"
    assert second.text == "POST /b HTTP/1.1|payload"
    assert server.connections == 1


async def test_sends_a_body_of_unknown_length_chunked() -> None:
    async def pieces() -> AsyncIterator[bytes]:
        for i in range(5):
            yield bytes([65 + i]) * (100_000 * (i + 1))

    server = Server(echo_forever())
    # The echo is 1.5 MB: over the default answer cap (MAX_ANSWER_BYTES), so a larger cap.
    async with (
        server as url,
        httpx.AsyncClient(transport=LeanTransport(max_answer=4 << 20)) as client,
    ):
        response = await client.put(url + "/up", content=pieces())
    expected = b"".join(bytes([65 + i]) * (100_000 * (i + 1)) for i in range(5))
    assert response.content == b"PUT /up HTTP/1.1|" + expected


async def test_reads_a_chunked_answer_and_keeps_the_connection() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            writer.write(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"
            )
            await writer.drain()

    server = Server(handler)
    async with server as url, httpx.AsyncClient(transport=LeanTransport()) as client:
        assert (await client.get(url)).text == "hello world"
        assert (await client.get(url)).text == "hello world"
    assert server.connections == 1


async def test_a_connection_idle_past_the_expiry_is_not_reused() -> None:
    """One a NAT dropped without a FIN looks alive; after the expiry it is not trusted."""
    server = Server(echo_forever())
    transport = LeanTransport(keepalive_expiry=0.0)
    async with server as url, httpx.AsyncClient(transport=transport) as client:
        assert (await client.get(url)).status_code == 200
        assert (await client.get(url)).status_code == 200
    assert server.connections == 2


async def test_a_connection_the_server_closed_is_not_reused() -> None:
    closed = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer(b"one"))  # says nothing of closing, then closes (idle timeout)
        await writer.drain()
        writer.close()
        await writer.wait_closed()
        closed.set()

    server = Server(handler)
    transport = LeanTransport()
    async with server as url, httpx.AsyncClient(transport=transport) as client:
        assert (await client.get(url)).text == "one"
        await closed.wait()
        idle = [c for conns in transport._idle.values() for c in conns]
        assert len(idle) == 1
        while not idle[0].reader.at_eof():  # the loop sees the FIN on its next turn
            await asyncio.sleep(0)
        assert (await client.get(url)).text == "one"  # a new connection, no error
    assert server.connections == 2


@pytest.mark.parametrize(
    "reply",
    [
        answer(b"bye", b"Connection: close"),
        b"HTTP/1.0 200 OK\r\n\r\nto the end",  # no length: the body runs to EOF
    ],
    ids=["connection-close", "http1.0-to-eof"],
)
async def test_answers_that_end_the_connection(reply: bytes) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(reply)
        await writer.drain()
        if b"HTTP/1.0" in reply:
            writer.close()

    server = Server(handler)
    async with server as url, httpx.AsyncClient(transport=LeanTransport()) as client:
        first = await client.get(url)
        second = await client.get(url)
    assert first.content == second.content == reply.rsplit(b"\r\n\r\n", 1)[1]
    assert server.connections == 2


async def test_skips_100_continue() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n" + answer(b"done"))
        await writer.drain()
        await reader.read()

    async with Server(handler) as url, httpx.AsyncClient(transport=LeanTransport()) as client:
        response = await client.get(url)
    assert (response.status_code, response.text) == (200, "done")


async def test_never_opens_more_than_max_connections() -> None:
    release = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            await release.wait()
            writer.write(answer(b"ok"))
            await writer.drain()

    server = Server(handler)
    async with server as url, httpx.AsyncClient(transport=LeanTransport(max_connections=2)) as c:
        tasks = [asyncio.create_task(c.get(url)) for _ in range(6)]
        while server.connections < 2:
            await asyncio.sleep(0)
        release.set()
        responses = await asyncio.gather(*tasks)
    assert [r.text for r in responses] == ["ok"] * 6
    assert server.most_open == 2 and server.connections == 2


async def test_errors_are_httpx_errors() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await reader.read()  # never answers

    async def hangs_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)

    async def cuts_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        await writer.drain()

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"SSH-2.0-OpenSSH\r\n\r\n")
        await writer.drain()

    cases: list[tuple[Handler, type[Exception]]] = [
        (silent, httpx.ReadTimeout),
        (hangs_up, httpx.RemoteProtocolError),
        (cuts_body, httpx.RemoteProtocolError),
        (garbage, httpx.RemoteProtocolError),
    ]
    for handler, expected in cases:
        transport = LeanTransport(max_connections=1)
        async with Server(handler) as url, httpx.AsyncClient(transport=transport) as client:
            with pytest.raises(expected):
                await client.get(url, timeout=httpx.Timeout(5.0, read=0.3))
            # The failed exchange gave its slot back: the pool is not leaking.
            assert transport._slots is not None and transport._slots._value == 1

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with httpx.AsyncClient(transport=LeanTransport()) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"http://127.0.0.1:{port}/")


async def test_an_answer_before_the_whole_body_is_what_the_caller_gets() -> None:
    """A server that refuses a big body from its headers (401, 413) answers and hangs up
    without reading it; the client sees that answer, not a write error."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")  # the head only; the body stays unread
        detail = b'{"detail": "too big"}'
        writer.write(
            b"HTTP/1.1 413 Request Entity Too Large\r\nConnection: close\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(detail), detail)
        )
        await writer.drain()
        writer.close()  # with unread bytes, the kernel resets the connection

    body = b"x" * (32 << 20)  # far more than the socket buffers hold
    async with Server(handler) as url, httpx.AsyncClient(transport=LeanTransport()) as client:
        response = await client.put(url + "/chunked_upload/", content=body)
    assert response.status_code == 413 and response.json() == {"detail": "too big"}


class CountingWrites(LeanTransport):
    """Records the size of each write the transport makes on its connections."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[int] = []
        self.read_sizes: list[int] = []

    async def _connect(
        self, request: httpx.Request, key: tuple[str, str, int], timeout: float | None
    ) -> _Connection:
        conn = await super()._connect(request, key, timeout)
        self.read_sizes.append(conn.writer.transport.max_size)  # type: ignore[attr-defined]
        write = conn.writer.write

        def counted(data: bytes | bytearray | memoryview) -> None:
            if data:
                self.writes.append(len(data))
            write(data)

        conn.writer.write = counted  # type: ignore[method-assign]
        return conn


@pytest.mark.parametrize("chunked", [False, True])
async def test_small_pieces_of_a_request_go_out_in_one_write(chunked: bool) -> None:
    parts = [b"preamble-", b"x" * 20_000, b"-epilogue"]
    big = [b"a" * 10, b"b" * 200_000, b"c" * 300_000, b"d" * 10]

    def body(pieces: list[bytes]) -> AsyncIterator[bytes]:
        async def gen() -> AsyncIterator[bytes]:
            for piece in pieces:
                yield piece

        return gen()

    transport = CountingWrites()
    server = Server(echo_forever())
    async with server as url, httpx.AsyncClient(transport=transport) as client:
        for pieces in (parts, big):
            headers = {} if chunked else {"Content-Length": str(sum(map(len, pieces)))}
            response = await client.post(url + "/u", content=body(pieces), headers=headers)
            assert response.content == b"POST /u HTTP/1.1|" + b"".join(pieces)
            if pieces is parts:
                assert len(transport.writes) == 1  # head, three pieces (and framing) at once
    # The large pieces are written as they come, not copied into one buffer.
    assert max(transport.writes[1:]) >= 300_000 and len(transport.writes) >= 4
    # Answers are read 64 KiB at a time (asyncio's 256 KiB is an mmap per read).
    assert transport.read_sizes == [64 << 10]


async def test_a_small_answer_is_read_before_it_is_handed_on() -> None:
    """An upload's JSON answer is read whole by the transport, so its connection goes back
    to the pool at once; a bigger body still streams and holds its connection until read."""
    big = b"x" * (EAGER_LIMIT + 1)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            line, _headers, _body = await read_request(reader)
            writer.write(answer(big if b"/big" in line else b'{"ok": true}'))
            await writer.drain()

    transport = LeanTransport(max_connections=1)
    async with Server(handler) as url:
        small = await transport.handle_async_request(httpx.Request("GET", url + "/small"))
        assert transport._slots is not None and transport._slots._value == 1  # slot free
        assert small.content == b'{"ok": true}'  # no aread() needed: it is here
        large = await transport.handle_async_request(httpx.Request("GET", url + "/big"))
        assert transport._slots._value == 0  # still held by the unread body
        assert await large.aread() == big
        await large.aclose()
        assert transport._slots._value == 1
    await transport.aclose()


async def test_a_small_compressed_answer_is_decoded() -> None:
    """The client accepts gzip and deflate (a proxy may compress JSON): a small answer read
    whole by the transport is still decoded."""
    plain = b'{"id": "0b6e", "offset": 3}' * 4

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            line, _headers, _body = await read_request(reader)
            if b"/gzip" in line:
                writer.write(answer(gzip.compress(plain), b"Content-Encoding: gzip"))
            else:
                writer.write(answer(zlib.compress(plain), b"Content-Encoding: deflate"))
            await writer.drain()

    async with Server(handler) as url, httpx.AsyncClient(transport=LeanTransport()) as client:
        assert (await client.get(url + "/gzip")).content == plain
        assert (await client.get(url + "/deflate")).content == plain
