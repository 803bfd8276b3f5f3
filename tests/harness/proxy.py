"""Fault-injecting HTTP/1.1 proxy for end-to-end tests of the upload client.

A TCP proxy on 127.0.0.1 (ephemeral port) in front of one HTTP/1.1 server. It
parses HTTP/1.1 framing (request: Content-Length or chunked body; response:
Content-Length, chunked or close-delimited, none for HEAD/1xx/204/304), keeps
connections alive (one upstream connection per client connection, opened
lazily and re-opened if the upstream closed it), and applies a fault chosen per
request by rules. Headers (including ``Host``) are forwarded verbatim, so a
server that builds absolute URLs from ``Host`` (drf-chunked-upload's ``url``
field) hands out URLs that point back through the proxy.

In the test's own event loop::

    async with FaultProxy("127.0.0.1", upstream_port) as proxy:
        proxy.add_rule(Rule(Fault("drop_response"), method="PUT", nth=2))
        ... talk to proxy.url ...
        await proxy.wait_for(lambda p: len(p.requests) >= 3, timeout=5)

From any thread (its own thread + event loop; the client may be a subprocess)::

    with ThreadedFaultProxy("127.0.0.1", upstream_port) as proxy:   # or .start() / .stop()
        proxy.add_rule(Rule(Fault("status", status=429, retry_after="2"), times=1))
        ... proxy.url ...
        proxy.wait_for(lambda p: p.requests and p.requests[-1].done, timeout=5)

Rules are checked in the order added; the first rule that fires decides the
request's fault (no rule: plain forwarding). A rule *matches* a request when
``method`` (case-insensitive) and ``path_contains`` (substring of the request
target) agree; it *fires* on a match when ``nth`` is None or this is the rule's
nth match (1-based, counting every matching request since the rule was added),
and it has fired fewer than ``times`` times (None: unlimited).
``Rule.matched`` / ``Rule.applied`` count matches and firings.

Faults (``Fault.kind``):

``cut_body``
    Forward the head and ``after_bytes`` body bytes upstream, then close the
    upstream connection (the server sees a truncated body) and half-close the
    client connection with FIN, discarding whatever the client still sends; the
    client finishes writing and reads EOF without a response.
``reset``
    Same upstream; the client connection is aborted with a TCP RST
    (``SO_LINGER`` 0): the client gets ECONNRESET.
``drop_response``
    Forward the whole request, read the whole upstream response (the server
    has APPLIED the request), then close both connections without sending
    anything to the client: the lost acknowledgement.
``status``
    Do not forward. Read and discard the request body, answer ``status`` with
    ``body``, ``retry_after`` (``Retry-After`` header) and ``headers``;
    the connection stays alive.
``stall``
    Forward the request; of the response forward only the first
    ``after_bytes`` bytes (0: nothing, not even the status line), then forward
    nothing for ``seconds`` (<= 0 or ``math.inf``: until the proxy stops)
    keeping the socket open, then the rest.
``drip``
    Forward the response at ``drip_rate`` bytes per second, in slices of
    ``max(1, drip_rate // 20)`` bytes (about 20 writes per second).
``delay_response``
    Wait until the upstream response has started (the server has answered),
    hold it for ``seconds``, then forward it.

``requests`` records every request: ``RequestRecord`` with method, path,
headers (lowercase keys), declared ``body_length``, ``body_forwarded`` (bytes
actually sent upstream), ``fault`` (or None), ``status`` (upstream's or the
synthesized one, None if none), ``delivered`` (the response reached the
client completely), ``error`` (a ``ForwardingProblem`` message, e.g. upstream
refused: the client connection is then closed), ``conn_id`` (which client
connection carried it) and ``done``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import socket
import struct
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Literal, Self

__all__ = [
    "Fault",
    "FaultKind",
    "FaultProxy",
    "ForwardingProblem",
    "RequestRecord",
    "Rule",
    "ThreadedFaultProxy",
]

FaultKind = Literal[
    "cut_body", "reset", "drop_response", "status", "stall", "drip", "delay_response"
]

READ_SIZE = 256 * 1024
STREAM_LIMIT = 1024 * 1024  # max head size; also the reader's buffer watermark
CUT_DRAIN_SECONDS = 10.0  # cut_body: how long to swallow the client's remaining bytes


@dataclass
class Fault:
    kind: FaultKind
    after_bytes: int = 0  # cut_body / reset: request-body bytes; stall: response bytes
    status: int = 503  # status: answer this without forwarding
    retry_after: str | None = None  # status: Retry-After value ("2" or an HTTP-date)
    body: bytes = b""  # status: response body
    headers: dict[str, str] = field(default_factory=dict)  # status: extra headers
    drip_rate: int = 100  # drip: response bytes per second
    seconds: float = 0.0  # stall (<= 0: forever) / delay_response duration


@dataclass
class Rule:
    fault: Fault
    method: str | None = None
    path_contains: str | None = None
    nth: int | None = None  # fire only on the nth match (1-based)
    times: int | None = None  # fire at most this many times
    matched: int = field(default=0, init=False)
    applied: int = field(default=0, init=False)

    def _matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return self.path_contains is None or self.path_contains in path


@dataclass
class RequestRecord:
    method: str
    path: str
    headers: dict[str, str]
    body_length: int | None  # declared Content-Length (None: chunked)
    conn_id: int
    fault: Fault | None = None
    body_forwarded: int = 0
    status: int | None = None
    delivered: bool = False
    error: str | None = None
    done: bool = False


class ForwardingProblem(Exception):
    """The proxy could not forward (upstream refused/closed): client connection is closed."""


class _ClientGone(Exception):
    """The client closed its connection."""


@dataclass
class _Head:
    raw: bytes
    start_line: str
    headers: dict[str, str]  # lowercase keys; repeated headers joined with ", "


async def _read_head(reader: asyncio.StreamReader) -> _Head | None:
    """Read a request/response head; None on EOF before any byte."""
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial.strip():
            return None
        raise ForwardingProblem("connection closed inside a message head") from exc
    except asyncio.LimitOverrunError as exc:
        raise ForwardingProblem("message head too large") from exc
    lines = raw.decode("latin-1").split("\r\n")
    start_line = lines[0]
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(":")
        key = name.strip().lower()
        value = value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return _Head(raw, start_line, headers)


def _is_chunked(headers: dict[str, str]) -> bool:
    return "chunked" in headers.get("transfer-encoding", "").lower()


def _content_length(headers: dict[str, str]) -> int | None:
    value = headers.get("content-length")
    if value is None:
        return None
    try:
        return int(value.split(",")[0].strip())
    except ValueError as exc:
        raise ForwardingProblem(f"bad Content-Length {value!r}") from exc


def _wants_close(version: str, headers: dict[str, str]) -> bool:
    tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
    if "close" in tokens:
        return True
    return version == "HTTP/1.0" and "keep-alive" not in tokens


async def _iter_exact(reader: asyncio.StreamReader, n: int) -> AsyncIterator[bytes]:
    while n > 0:
        data = await reader.read(min(n, READ_SIZE))
        if not data:
            raise asyncio.IncompleteReadError(b"", n)
        n -= len(data)
        yield data


async def _iter_chunked(reader: asyncio.StreamReader) -> AsyncIterator[bytes]:
    """Raw bytes of a chunked body, framing included, up to and including the trailers."""
    while True:
        line = await reader.readuntil(b"\r\n")
        yield line
        try:
            size = int(line.split(b";")[0].strip(), 16)
        except ValueError as exc:
            raise ForwardingProblem(f"bad chunk size line {line!r}") from exc
        if size == 0:
            while True:
                trailer = await reader.readuntil(b"\r\n")
                yield trailer
                if trailer == b"\r\n":
                    return
        async for piece in _iter_exact(reader, size + 2):
            yield piece


async def _iter_until_eof(reader: asyncio.StreamReader) -> AsyncIterator[bytes]:
    while data := await reader.read(READ_SIZE):
        yield data


def _set_rst_on_close(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


async def _close(writer: asyncio.StreamWriter | None, *, rst: bool = False) -> None:
    if writer is None:
        return
    if rst:
        _set_rst_on_close(writer)
        writer.transport.abort()
        return
    writer.close()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(writer.wait_closed(), 2)


class _Upstream:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer


class FaultProxy:
    """The proxy, running in the current event loop (see the module docstring)."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.requests: list[RequestRecord] = []
        self.rules: list[Rule] = []
        self.port: int | None = None
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._changed: asyncio.Event | None = None
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._conn_ids = itertools.count(1)
        self.accepted = 0  # the last client connection's id: later ones are another client's
        self._stopping: asyncio.Event | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("proxy not started")
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> int:
        self._changed = asyncio.Event()
        self._stopping = asyncio.Event()
        self._server = await asyncio.start_server(
            self._handle_client, "127.0.0.1", 0, limit=STREAM_LIMIT
        )
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def stop(self) -> None:
        if self._stopping is not None:
            self._stopping.set()
        if self._server is not None:
            self._server.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
            self._server = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # rules -------------------------------------------------------------

    def add_rule(self, rule: Rule) -> None:
        with self._lock:
            self.rules.append(rule)

    def clear_rules(self) -> None:
        with self._lock:
            self.rules.clear()

    def _choose_fault(self, method: str, path: str) -> Fault | None:
        chosen: Fault | None = None
        with self._lock:
            for rule in self.rules:
                if not rule._matches(method, path):
                    continue
                rule.matched += 1
                if chosen is not None:
                    continue
                if rule.nth is not None and rule.matched != rule.nth:
                    continue
                if rule.times is not None and rule.applied >= rule.times:
                    continue
                rule.applied += 1
                chosen = rule.fault
        return chosen

    # waiting -----------------------------------------------------------

    def _notify(self) -> None:
        with self._cond:
            self._cond.notify_all()
        if self._changed is not None:
            event, self._changed = self._changed, asyncio.Event()
            event.set()

    async def wait_for(
        self, predicate: Callable[[FaultProxy], object], timeout: float = 10.0
    ) -> None:
        """Wait (in the proxy's loop) until ``predicate(self)`` is true; TimeoutError after."""
        async with asyncio.timeout(timeout):
            while not predicate(self):
                assert self._changed is not None, "proxy not started"
                await self._changed.wait()

    def wait_for_sync(self, predicate: Callable[[FaultProxy], object], timeout: float) -> None:
        """Same from another thread (the proxy's loop must be running elsewhere)."""
        with self._cond:
            if not self._cond.wait_for(lambda: predicate(self), timeout):
                raise TimeoutError(f"proxy condition not met within {timeout}s")

    # connection handling ---------------------------------------------------

    async def _handle_client(
        self, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        conn_id = self.accepted = next(self._conn_ids)
        upstream: _Upstream | None = None
        rst = False
        try:
            while True:
                head = await _read_head(creader)
                if head is None:
                    break
                upstream, keep, rst = await self._one_request(
                    conn_id, head, creader, cwriter, upstream
                )
                if not keep:
                    break
        except (
            ForwardingProblem,
            _ClientGone,
            OSError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
        ):
            pass
        except asyncio.CancelledError:
            rst = False
        finally:
            await _close(upstream.writer if upstream else None)
            await _close(cwriter, rst=rst)
            self._tasks.discard(task)

    async def _connect_upstream(self) -> _Upstream:
        try:
            reader, writer = await asyncio.open_connection(
                self.upstream_host, self.upstream_port, limit=STREAM_LIMIT
            )
        except OSError as exc:
            raise ForwardingProblem(f"upstream refused: {exc}") from exc
        return _Upstream(reader, writer)

    async def _one_request(
        self,
        conn_id: int,
        head: _Head,
        creader: asyncio.StreamReader,
        cwriter: asyncio.StreamWriter,
        upstream: _Upstream | None,
    ) -> tuple[_Upstream | None, bool, bool]:
        """Handle one request; returns (upstream, keep client connection, close with RST)."""
        parts = head.start_line.split(" ")
        if len(parts) != 3:
            raise ForwardingProblem(f"bad request line {head.start_line!r}")
        method, path, version = parts
        chunked = _is_chunked(head.headers)
        length = None if chunked else (_content_length(head.headers) or 0)
        fault = self._choose_fault(method, path)
        record = RequestRecord(method, path, dict(head.headers), length, conn_id, fault)
        with self._lock:
            self.requests.append(record)
        self._notify()
        client_close = _wants_close(version, head.headers)
        body = _iter_chunked(creader) if chunked else _iter_exact(creader, length or 0)
        try:
            if fault is not None and fault.kind == "status":
                async for _ in body:
                    pass
                await self._send_status(cwriter, fault, record, client_close)
                return upstream, not client_close, False

            if upstream is None or upstream.reader.at_eof():
                if upstream is not None:
                    await _close(upstream.writer)
                upstream = await self._connect_upstream()
            try:
                upstream.writer.write(head.raw)
                if fault is not None and fault.kind in ("cut_body", "reset"):
                    await self._forward_body(body, upstream, record, limit=fault.after_bytes)
                    await _close(upstream.writer)
                    if fault.kind == "reset":
                        return None, False, True
                    await self._half_close_and_drain(creader, cwriter)
                    return None, False, False
                await self._forward_body(body, upstream, record, limit=None)
            except (ConnectionError, OSError) as exc:
                raise ForwardingProblem(f"upstream write failed: {exc}") from exc

            keep = await self._forward_response(method, fault, upstream, cwriter, record)
            if not keep:
                await _close(upstream.writer)
                upstream = None
            return upstream, keep and not client_close, False
        except BaseException as exc:
            if isinstance(exc, ForwardingProblem | OSError):
                record.error = f"{type(exc).__name__}: {exc}"
            if upstream is not None:
                upstream.writer.close()  # the caller only closes the upstream it knows about
            raise
        finally:
            record.done = True
            self._notify()

    async def _forward_body(
        self,
        body: AsyncIterator[bytes],
        upstream: _Upstream,
        record: RequestRecord,
        *,
        limit: int | None,
    ) -> None:
        try:
            async for piece in body:
                if limit is not None and record.body_forwarded + len(piece) >= limit:
                    piece = piece[: limit - record.body_forwarded]
                    upstream.writer.write(piece)
                    record.body_forwarded += len(piece)
                    await upstream.writer.drain()
                    return
                upstream.writer.write(piece)
                record.body_forwarded += len(piece)
                await upstream.writer.drain()
        except asyncio.IncompleteReadError as exc:
            raise _ClientGone from exc
        if limit is not None:
            await upstream.writer.drain()

    async def _half_close_and_drain(
        self, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter
    ) -> None:
        """FIN to the client, then swallow what it still sends (so it sees EOF, not RST)."""
        with contextlib.suppress(OSError):
            cwriter.write_eof()
        with contextlib.suppress(TimeoutError, OSError):
            async with asyncio.timeout(CUT_DRAIN_SECONDS):
                while await creader.read(READ_SIZE):
                    pass

    async def _send_status(
        self, cwriter: asyncio.StreamWriter, fault: Fault, record: RequestRecord, close: bool
    ) -> None:
        try:
            reason = HTTPStatus(fault.status).phrase
        except ValueError:
            reason = "Unknown"
        headers = {"Content-Length": str(len(fault.body))}
        if fault.body:
            headers["Content-Type"] = "application/json"
        if fault.retry_after is not None:
            headers["Retry-After"] = fault.retry_after
        if close:
            headers["Connection"] = "close"
        headers.update(fault.headers)
        lines = [f"HTTP/1.1 {fault.status} {reason}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        record.status = fault.status
        cwriter.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + fault.body)
        await cwriter.drain()
        record.delivered = True

    async def _forward_response(
        self,
        method: str,
        fault: Fault | None,
        upstream: _Upstream,
        cwriter: asyncio.StreamWriter,
        record: RequestRecord,
    ) -> bool:
        """Relay the response; returns whether both connections may be kept alive."""
        sink = _Sink(cwriter, fault, self._stopping)
        while True:
            head = await _read_head(upstream.reader)
            if head is None:
                raise ForwardingProblem("upstream closed without a response")
            version, _, rest = head.start_line.partition(" ")
            try:
                status = int(rest.split(" ")[0])
            except ValueError as exc:
                raise ForwardingProblem(f"bad status line {head.start_line!r}") from exc
            record.status = status
            await sink.send(head.raw)
            if status >= 200:
                break
        keep = not _wants_close(version, head.headers)
        body: AsyncIterator[bytes] | None
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            body = None
        elif _is_chunked(head.headers):
            body = _iter_chunked(upstream.reader)
        elif (length := _content_length(head.headers)) is not None:
            body = _iter_exact(upstream.reader, length)
        else:
            body = _iter_until_eof(upstream.reader)
            keep = False
        if body is not None:
            try:
                async for piece in body:
                    await sink.send(piece)
            except asyncio.IncompleteReadError as exc:
                raise ForwardingProblem("upstream closed inside the response body") from exc
        if sink.dropped:
            raise _ClientGone  # drop_response: close the client without an answer
        record.delivered = True
        return keep


class _Sink:
    """Writes response bytes to the client, shaped by the fault."""

    def __init__(
        self, writer: asyncio.StreamWriter, fault: Fault | None, stopping: asyncio.Event | None
    ) -> None:
        self.writer = writer
        self.fault = fault
        self.stopping = stopping
        self.sent = 0
        self.dropped = fault is not None and fault.kind == "drop_response"
        self.waited = False

    async def _write(self, data: bytes) -> None:
        if not data:
            return
        self.writer.write(data)
        self.sent += len(data)
        try:
            await self.writer.drain()
        except (ConnectionError, OSError) as exc:
            raise _ClientGone from exc

    async def _pause(self, seconds: float) -> None:
        if seconds <= 0 or math.isinf(seconds):
            if self.stopping is None:
                await asyncio.Future()  # until cancelled
            else:
                await self.stopping.wait()
                raise _ClientGone
        else:
            await asyncio.sleep(seconds)

    async def send(self, data: bytes) -> None:
        fault = self.fault
        if self.dropped:
            return
        if fault is None or fault.kind in ("cut_body", "reset", "status"):
            await self._write(data)
        elif fault.kind == "delay_response":
            if not self.waited:
                self.waited = True
                await asyncio.sleep(max(0.0, fault.seconds))
            await self._write(data)
        elif fault.kind == "stall":
            if not self.waited and self.sent + len(data) >= fault.after_bytes:
                cut = max(0, fault.after_bytes - self.sent)
                await self._write(data[:cut])
                data = data[cut:]
                self.waited = True
                await self._pause(fault.seconds)
            await self._write(data)
        elif fault.kind == "drip":
            rate = max(1, fault.drip_rate)
            step = max(1, rate // 20)
            loop = asyncio.get_running_loop()
            for i in range(0, len(data), step):
                started = loop.time()
                piece = data[i : i + step]
                await self._write(piece)
                await asyncio.sleep(max(0.0, len(piece) / rate - (loop.time() - started)))
        else:
            await self._write(data)


class ThreadedFaultProxy:
    """A FaultProxy running in its own thread and event loop."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.proxy = FaultProxy(upstream_host, upstream_port)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return self.proxy.url

    @property
    def port(self) -> int | None:
        return self.proxy.port

    @property
    def requests(self) -> list[RequestRecord]:
        return self.proxy.requests

    @property
    def rules(self) -> list[Rule]:
        return self.proxy.rules

    @property
    def accepted(self) -> int:
        return self.proxy.accepted

    def start(self, timeout: float = 10.0) -> str:
        """Start the thread and the proxy; returns the proxy's URL."""
        if self._thread is not None:
            return self.url
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()
            loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=run, name="fault-proxy", daemon=True)
        self._thread.start()
        ready.wait(timeout)
        asyncio.run_coroutine_threadsafe(self.proxy.start(), loop).result(timeout)
        return self.url

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread is None or self._loop is None:
            return
        loop = self._loop
        try:
            asyncio.run_coroutine_threadsafe(self.proxy.stop(), loop).result(timeout)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            self._thread.join(timeout)
            self._thread = None
            self._loop = None

    def __enter__(self) -> ThreadedFaultProxy:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def add_rule(self, rule: Rule) -> None:
        self.proxy.add_rule(rule)

    def clear_rules(self) -> None:
        self.proxy.clear_rules()

    def wait_for(self, predicate: Callable[[FaultProxy], object], timeout: float = 10.0) -> None:
        """Block until ``predicate(proxy)`` is true; TimeoutError after ``timeout``."""
        self.proxy.wait_for_sync(predicate, timeout)
