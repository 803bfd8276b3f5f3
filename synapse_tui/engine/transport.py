"""A lean HTTP/1.1 transport under the engine's httpx client.

httpx is the engine's HTTP API (requests, responses, timeouts, errors); below it,
httpcore's pool costs ~2.5 ms of Python per request on this project's benchmark
machine: anyio wrappers, per-request locks and traces, and a pass over every pooled
connection with a `getpeername` and a `poll` each time a request is assigned. For
2,000 small files at 8 connections that made the client, not the server, the limit.

This transport does only what the engine asks of it: HTTP/1.1 over asyncio streams
(TCP, or TLS with httpx's own SSL context), keep-alive with a bounded pool, request
bodies of known length or chunked, responses by Content-Length, chunked or to EOF,
capped at `max_answer` bytes (decoded gzip/deflate included: decoded here, bounded).
Idle connections expire after 5 s, as in httpx. HTTP proxies (engine/proxy.py): a
CONNECT tunnel to https origins, absolute-form requests to http ones. No HTTP/2, no
upgrades. It raises httpx's own
exceptions (ConnectError, ReadTimeout, ...), so everything above it, retries
included, is unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import time
import zlib
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

import httpx

from synapse_tui.engine import forget_httpx_stub
from synapse_tui.engine.proxy import Proxies

forget_httpx_stub()  # httpx is imported: see engine/__init__.py

T = TypeVar("T")

_HEAD_LIMIT = 64 << 10  # status line + headers of one response
# A connection idle longer than this is not reused (httpx's default): a NAT or a load
# balancer may have dropped it without a FIN, and a request on it would wait out the
# whole read timeout before failing.
KEEPALIVE_EXPIRY = 5.0
_READ_PIECE = 1 << 20
_READ_SIZE = 64 << 10  # a socket read: below glibc's mmap threshold
COALESCE_LIMIT = 64 << 10  # request pieces up to this much in total go out in one write
EAGER_LIMIT = 64 << 10  # an answer this small is read whole before it is handed on
_NO_BODY_STATUS = frozenset({204, 304})
# The largest answer body taken, decoded: every answer of the API is a small JSON document
# (an upload's state, a page of a list), so anything near this is a broken or hostile server.
MAX_ANSWER_BYTES = 1 << 20
# Interim (1xx) answers taken before the final one: a server may send a few, not a stream.
MAX_INTERIM = 8
_DECODED = frozenset({b"gzip", b"x-gzip", b"deflate"})
_Head = tuple[int, bytes, list[tuple[bytes, bytes]], bool]


class AnswerTooLarge(httpx.RemoteProtocolError):
    """The answer's body is over the transport's cap (raw, or once decoded)."""


def _decode(raw: bytes, encoding: bytes, limit: int, request: httpx.Request) -> bytes:
    """A gzip or deflate body decoded, never to more than `limit` bytes (a compression
    bomb stops at the cap instead of filling memory)."""
    if encoding == b"gzip" or encoding == b"x-gzip":
        wbits = zlib.MAX_WBITS | 16
    elif raw[:1] and (raw[0] & 0x0F) == 8 and int.from_bytes(raw[:2], "big") % 31 == 0:
        wbits = zlib.MAX_WBITS  # deflate as RFC 9110 means it: a zlib stream
    else:
        wbits = -zlib.MAX_WBITS  # deflate as some servers send it: raw
    decoder = zlib.decompressobj(wbits)
    try:
        out = decoder.decompress(raw, limit + 1)
    except zlib.error as exc:
        raise httpx.DecodingError(f"bad {encoding.decode('latin-1')} body: {exc}") from None
    if len(out) > limit or decoder.unconsumed_tail:
        raise AnswerTooLarge(f"answer larger than {limit} bytes once decoded", request=request)
    return out


class _Reader(asyncio.StreamReader):
    """A stream reader that keeps what arrived readable after the connection broke.

    A server that answers early (401, 413) and closes with part of the body unread makes
    the kernel reset the connection. asyncio then fails every read, and the answer that
    is already here would be lost; this reader turns the reset into an end of stream
    after the bytes that came before it.
    """

    def set_exception(self, exc: Exception) -> None:
        if isinstance(exc, ConnectionError):
            self.feed_eof()
        else:
            super().set_exception(exc)

    def buffered(self) -> int:
        """Bytes received and not yet read: a read of at most this many cannot wait.

        StreamReader's private `_buffer` (there since 3.4); were it gone, 0: every read
        then runs under its deadline, as it would anyway (tests/engine/test_import_patches.py
        fails first)."""
        buffer = getattr(self, "_buffer", None)
        return len(buffer) if buffer is not None else 0


class _Connection:
    __slots__ = ("idle_since", "proxy_head", "reader", "target_prefix", "writer")

    def __init__(self, reader: _Reader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.idle_since = 0.0
        self.target_prefix = b""  # through an http proxy: `http://host:port` (absolute form)
        self.proxy_head = b""  # through an http proxy: its Proxy-Authorization line

    def reusable(self) -> bool:
        """Idle and still open: the server has not closed it (its FIN sets EOF at once)."""
        return not self.writer.is_closing() and not self.reader.at_eof()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


async def _within(awaitable: Awaitable[T], timeout: float | None) -> T:
    """One I/O operation under its own deadline (httpx's timeouts are per operation)."""
    if timeout is None:
        return await awaitable
    async with asyncio.timeout(timeout):
        return await awaitable


class LeanTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 with keep-alive, at most `max_connections` open at once."""

    def __init__(
        self,
        *,
        verify: bool | str = True,
        max_connections: int = 32,
        keepalive_expiry: float = KEEPALIVE_EXPIRY,
        max_answer: int = MAX_ANSWER_BYTES,
        proxies: Proxies | None = None,
    ) -> None:
        self._proxies = proxies
        self._verify = verify
        self.max_answer = max_answer
        self._expiry = keepalive_expiry
        self._ssl: ssl.SSLContext | None = None
        self._max = max_connections
        self._slots: asyncio.Semaphore | None = None
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._closed = False

    # -- the pool ---------------------------------------------------------------------------

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            verify = self._verify
            if isinstance(verify, str):  # a CA bundle or folder (httpx deprecates the path)
                folder = os.path.isdir(verify)
                context = ssl.create_default_context(
                    cafile=None if folder else verify, capath=verify if folder else None
                )
            else:  # certifi's CAs, as httpx's client had them (no SSL_CERT_* variables)
                context = httpx.create_ssl_context(verify=verify, trust_env=False)
            self._ssl = context
        return self._ssl

    async def _connect(
        self, request: httpx.Request, key: tuple[str, str, int], timeout: float | None
    ) -> _Connection:
        scheme, host, port = key
        tls = self._ssl_context() if scheme == "https" else None
        loop = asyncio.get_running_loop()
        reader = _Reader(limit=_HEAD_LIMIT, loop=loop)
        protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
        route = self._proxies.route(scheme, host, port) if self._proxies is not None else None
        try:
            if route is not None:  # engine/proxy.py: the tunnel or the proxy's connection
                return await _within(
                    self._via_proxy(route, reader, protocol, scheme, host, port, tls), timeout
                )
            sock_transport, _ = await _within(
                loop.create_connection(
                    lambda: protocol,
                    host,
                    port,
                    ssl=tls,
                    server_hostname=host if tls is not None else None,
                ),
                timeout,
            )
        except TimeoutError:
            raise httpx.ConnectTimeout("timed out while connecting", request=request) from None
        except OSError as exc:  # ssl.SSLError included: the engine tells refusals apart
            raise httpx.ConnectError(str(exc) or type(exc).__name__, request=request) from exc
        if isinstance(getattr(sock_transport, "max_size", None), int):
            # Answers are small: asyncio's 256 KiB read is an mmap and a munmap per recv.
            sock_transport.max_size = _READ_SIZE  # type: ignore[attr-defined]
        writer = asyncio.StreamWriter(sock_transport, protocol, reader, loop)
        return _Connection(reader, writer)

    async def _via_proxy(
        self,
        route: Any,
        reader: _Reader,
        protocol: asyncio.StreamReaderProtocol,
        scheme: str,
        host: str,
        port: int,
        tls: ssl.SSLContext | None,
    ) -> _Connection:
        loop = asyncio.get_running_loop()
        proxy = route.proxy
        sock_transport, _ = await loop.create_connection(lambda: protocol, proxy.host, proxy.port)
        writer = asyncio.StreamWriter(sock_transport, protocol, reader, loop)
        conn = _Connection(reader, writer)
        try:
            if tls is not None:
                await proxy.tunnel(reader, writer, host, port, tls)
            else:
                conn.target_prefix = route.request_prefix(scheme, host, port)
                conn.proxy_head = proxy.head_lines()
        except BaseException:
            conn.close()
            raise
        return conn

    def _take_idle(self, key: tuple[str, str, int]) -> _Connection | None:
        idle = self._idle.get(key)
        if not idle:
            return None
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if conn.reusable() and now - conn.idle_since < self._expiry:
                return conn
            conn.close()
        return None

    def _put_back(self, key: tuple[str, str, int], conn: _Connection) -> None:
        if self._closed or not conn.reusable():
            conn.close()
        else:
            conn.idle_since = time.monotonic()
            self._idle.setdefault(key, []).append(conn)

    # -- one exchange -----------------------------------------------------------------------

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._closed:
            raise RuntimeError("the transport is closed")
        url = request.url
        if url.scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(f"unsupported scheme {url.scheme!r}", request=request)
        key = (url.scheme, url.host, url.port or (443 if url.scheme == "https" else 80))
        timeouts = request.extensions.get("timeout", {})
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._max)
        slots = self._slots
        try:
            if slots.locked():
                await _within(slots.acquire(), timeouts.get("pool"))
            else:
                await slots.acquire()  # a free slot: it cannot wait, so no deadline to set
        except TimeoutError:
            raise httpx.PoolTimeout("no free connection in time", request=request) from None
        conn: _Connection | None = None
        try:
            conn = self._take_idle(key) or await self._connect(
                request, key, timeouts.get("connect")
            )
            try:
                await self._send(conn, request, timeouts.get("write"))
            except httpx.WriteError as error:
                # A server may answer and close before taking the whole body (a 401, a
                # 413): that answer is what counts, as with httpcore. None: the write error.
                try:
                    answer = await self._read_head(conn, request, timeouts.get("read"))
                except httpx.TransportError:
                    raise error from None
                answer = (*answer[:3], False)  # the connection is done for
            else:
                answer = await self._read_head(conn, request, timeouts.get("read"))
            status, reason, headers, http11 = answer
            body = _Body(self, conn, key, request, headers, status, http11, timeouts.get("read"))
            if body.length is not None and body.length > self.max_answer:
                raise AnswerTooLarge(
                    f"answer of {body.length} bytes, over the {self.max_answer}-byte cap",
                    request=request,
                )
        except BaseException:
            if conn is not None:
                conn.close()
            slots.release()
            raise
        extensions = {"http_version": b"HTTP/1.1", "reason_phrase": reason}
        if body.small() or body.encoding is not None:
            # An upload's JSON answer: read here, the connection goes back now. An encoded
            # one is read whole too, to be decoded here under the cap (httpx's decoders
            # have no output limit).
            try:
                content = b"".join([piece async for piece in body])
            except BaseException:
                await body.aclose()  # cancelled mid-read: the connection is not reusable
                raise
            if body.encoding is not None:
                # gzip and deflate (what is asked for) are decoded; anything else is left
                # as it came, for the JSON reader to refuse.
                if body.encoding in _DECODED:
                    content = _decode(content, body.encoding, self.max_answer, request)
                headers = [(n, v) for n, v in headers if n.lower() != b"content-encoding"]
            response = httpx.Response(
                status, headers=headers, stream=httpx.ByteStream(content), extensions=extensions
            )
            # Read already: what Response(content=...) sets after running the bytes through
            # its stream and decoders again (~20 us per answer). Were httpx to rename it,
            # aread() would read the ByteStream as usual: slower, the same bytes.
            response._content = content
            return response
        return httpx.Response(status, headers=headers, stream=body, extensions=extensions)

    async def _send(self, conn: _Connection, request: httpx.Request, timeout: float | None) -> None:
        url = request.url
        target = conn.target_prefix + url.raw_path
        lines = [request.method.encode("ascii"), b" ", target, b" HTTP/1.1\r\n", conn.proxy_head]
        chunked = False
        for name, value in request.headers.raw:
            if name.lower() == b"transfer-encoding" and value.lower() == b"chunked":
                chunked = True
            lines += (name, b": ", value, b"\r\n")
        lines.append(b"\r\n")
        writer = conn.writer
        # Small pieces (the head, a multipart preamble, a small file, its epilogue) go out
        # in one write: one system call and one TCP segment where there were four, and one
        # read for the server. Larger pieces are written as they come, with flow control.
        pending = [b"".join(lines)]
        size = len(pending[0])
        try:
            stream: Any = request.stream
            async for piece in stream:
                if not piece:
                    continue
                framed = [b"%x\r\n" % len(piece), piece, b"\r\n"] if chunked else [piece]
                if size + len(piece) <= COALESCE_LIMIT:
                    pending += framed
                    size += len(piece)
                    continue
                writer.write(b"".join(pending))
                pending.clear()
                size = 0
                for part in framed:
                    writer.write(part)
                await _within(writer.drain(), timeout)
            if chunked:
                pending.append(b"0\r\n\r\n")
            if pending:
                writer.write(b"".join(pending))
            if writer.transport.get_write_buffer_size():
                await _within(writer.drain(), timeout)
            else:
                await writer.drain()  # all sent: it cannot wait (it may still raise)
        except TimeoutError:
            raise httpx.WriteTimeout("timed out while sending", request=request) from None
        except OSError as exc:
            raise httpx.WriteError(str(exc) or type(exc).__name__, request=request) from exc

    async def _read_head(
        self, conn: _Connection, request: httpx.Request, timeout: float | None
    ) -> _Head:
        try:
            for _ in range(MAX_INTERIM + 1):
                head = await _within(conn.reader.readuntil(b"\r\n\r\n"), timeout)
                answer = _parse_head(head, request)
                if answer[0] >= 200 or answer[0] == 101:
                    return answer
                # 1xx (100 Continue, 103 Early Hints): a final answer follows
            raise httpx.RemoteProtocolError(
                f"more than {MAX_INTERIM} interim (1xx) answers", request=request
            )
        except TimeoutError:
            raise httpx.ReadTimeout("timed out waiting for the answer", request=request) from None
        except asyncio.IncompleteReadError:
            raise httpx.RemoteProtocolError(
                "Server disconnected without sending a response.", request=request
            ) from None
        except asyncio.LimitOverrunError:
            raise httpx.RemoteProtocolError("answer headers too long", request=request) from None
        except OSError as exc:
            raise httpx.ReadError(str(exc) or type(exc).__name__, request=request) from exc

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                conn.close()


def _parse_head(head: bytes, request: httpx.Request) -> _Head:
    """Status, reason, headers, and whether the answer is HTTP/1.1 (HTTP/1.0: no keep-alive)."""
    lines = head[:-4].split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise httpx.RemoteProtocolError(f"malformed status line {lines[0][:80]!r}", request=request)
    headers: list[tuple[bytes, bytes]] = []
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip():
            raise httpx.RemoteProtocolError(f"malformed header {line[:80]!r}", request=request)
        headers.append((name, value.strip()))
    reason = parts[2] if len(parts) > 2 else b""
    return int(parts[1]), reason, headers, parts[0] != b"HTTP/1.0"


class _Body(httpx.AsyncByteStream):
    """A response body read off its connection; the connection goes back to the pool when
    the body was read to its end and both sides agree to keep it alive."""

    def __init__(
        self,
        owner: LeanTransport,
        conn: _Connection,
        key: tuple[str, str, int],
        request: httpx.Request,
        headers: list[tuple[bytes, bytes]],
        status: int,
        http11: bool,
        timeout: float | None,
    ) -> None:
        self._owner = owner
        self._conn: _Connection | None = conn
        self._key = key
        self._request = request
        self._timeout = timeout
        self._length: int | None = None
        self._chunked = False
        self._limit = owner.max_answer
        self.encoding: bytes | None = None  # a Content-Encoding other than identity
        keep = http11
        for name, value in headers:
            lname = name.lower()
            if lname == b"content-length":
                if not value.isdigit():
                    raise httpx.RemoteProtocolError("bad Content-Length", request=request)
                self._length = int(value)
            elif lname == b"transfer-encoding":
                self._chunked = b"chunked" in value.lower()
            elif lname == b"connection":
                keep = keep and b"close" not in value.lower()
            elif lname == b"content-encoding":
                coding = value.strip().lower()
                if coding not in (b"", b"identity"):
                    self.encoding = coding
        if request.headers.get("connection", "").lower() == "close":
            keep = False
        self._empty = request.method == "HEAD" or status in _NO_BODY_STATUS or status < 200
        if not self._empty and not self._chunked and self._length is None:
            keep = False  # read to EOF
        self._keep = keep

    @property
    def length(self) -> int | None:
        """The body's declared Content-Length (None: chunked, to EOF, or none)."""
        return None if self._empty or self._chunked else self._length

    def small(self) -> bool:
        """A body of a known length up to EAGER_LIMIT (or none at all)."""
        return self._empty or (
            not self._chunked and self._length is not None and self._length <= EAGER_LIMIT
        )

    async def __aiter__(self) -> AsyncIterator[bytes]:
        conn = self._conn
        if conn is None:
            return
        request = self._request
        reader, timeout = conn.reader, self._timeout
        taken = 0
        try:
            if self._empty:
                pass
            elif self._chunked:
                async for piece in self._read_chunked(reader, timeout):
                    taken += len(piece)
                    if taken > self._limit:
                        raise AnswerTooLarge(
                            f"answer over the {self._limit}-byte cap", request=request
                        )
                    yield piece
            elif self._length is not None:
                left = self._length
                while left:
                    n = min(left, _READ_PIECE)
                    if reader.buffered() >= n:  # already here (a small answer): no deadline
                        yield await reader.readexactly(n)
                    else:
                        yield await _within(reader.readexactly(n), timeout)
                    left -= n
            else:
                while piece := await _within(reader.read(_READ_PIECE), timeout):
                    taken += len(piece)
                    if taken > self._limit:
                        raise AnswerTooLarge(
                            f"answer over the {self._limit}-byte cap", request=request
                        )
                    yield piece
        except AnswerTooLarge:
            self._drop()
            raise
        except TimeoutError:
            self._drop()
            raise httpx.ReadTimeout("timed out reading the answer", request=request) from None
        except asyncio.IncompleteReadError:
            self._drop()
            raise httpx.RemoteProtocolError(
                "peer closed connection without sending complete message body", request=request
            ) from None
        except (OSError, ValueError, asyncio.LimitOverrunError) as exc:
            self._drop()
            if isinstance(exc, OSError):
                raise httpx.ReadError(str(exc) or type(exc).__name__, request=request) from exc
            raise httpx.RemoteProtocolError(f"bad chunked body: {exc}", request=request) from None
        self._finish()

    async def _read_chunked(
        self, reader: asyncio.StreamReader, timeout: float | None
    ) -> AsyncIterator[bytes]:
        while True:
            line = await _within(reader.readuntil(b"\r\n"), timeout)
            size = int(line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                while (await _within(reader.readuntil(b"\r\n"), timeout)) != b"\r\n":
                    pass  # trailers
                return
            left = size
            while left:
                n = min(left, _READ_PIECE)
                yield await _within(reader.readexactly(n), timeout)
                left -= n
            if await _within(reader.readexactly(2), timeout) != b"\r\n":
                raise ValueError("chunk not followed by CRLF")

    def _finish(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if self._keep:
            self._owner._put_back(self._key, conn)
        else:
            conn.close()
        self._release()

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
            self._release()

    def _release(self) -> None:
        slots = self._owner._slots
        if slots is not None:
            slots.release()

    async def aclose(self) -> None:
        self._drop()  # unread body left: the connection cannot be reused
