"""Each fault of tests.harness.proxy does what it says, against a tiny real upstream."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import pytest

from tests.harness.proxy import Fault, FaultProxy, Rule, ThreadedFaultProxy

T = TypeVar("T")
DEADLINE = 5.0


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    complete: bool
    at: float = field(default_factory=time.monotonic)


class Upstream:
    """A small HTTP/1.1 server recording what it receives.

    Responses: ``/chunked`` chunked, ``/close`` close-delimited, ``/big?n=N`` N bytes
    with Content-Length; anything else a JSON summary (method, path, length, md5).
    """

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.port = 0
        self._server: asyncio.Server | None = None
        self._changed: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    async def start(self) -> int:
        self._changed = asyncio.Event()
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _record(self, item: Received) -> None:
        self.received.append(item)
        assert self._changed is not None
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    async def wait_for(self, predicate: Callable[[], object], timeout: float = DEADLINE) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                assert self._changed is not None
                await self._changed.wait()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            while True:
                try:
                    raw = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    return
                lines = raw.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ")
                headers = {}
                for line in lines[1:]:
                    if line:
                        k, _, v = line.partition(":")
                        headers[k.strip().lower()] = v.strip()
                length = int(headers.get("content-length", "0"))
                try:
                    body = await reader.readexactly(length)
                except asyncio.IncompleteReadError as exc:
                    self._record(Received(method, path, headers, exc.partial, False))
                    return
                self._record(Received(method, path, headers, body, True))
                if not await self._respond(writer, method, path, body):
                    return
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            self._tasks.discard(task)

    async def _respond(
        self, writer: asyncio.StreamWriter, method: str, path: str, body: bytes
    ) -> bool:
        if path == "/chunked":
            writer.write(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"
            )
            await writer.drain()
            return True
        if path == "/close":
            writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil-eof")
            await writer.drain()
            return False
        if path.startswith("/big?n="):
            payload = b"x" * int(path.split("=")[1])
        else:
            payload = json.dumps(
                {
                    "method": method,
                    "path": path,
                    "length": len(body),
                    "md5": hashlib.md5(body).hexdigest(),
                }
            ).encode()
        head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(payload)}\r\n"
        head += "Content-Type: application/json\r\n\r\n"
        writer.write(head.encode() + payload)
        await writer.drain()
        return True


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    server = Upstream()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def proxy(upstream: Upstream) -> AsyncIterator[FaultProxy]:
    async with FaultProxy("127.0.0.1", upstream.port) as p:
        yield p


def client(proxy: FaultProxy, **kw: Any) -> httpx.AsyncClient:
    kw.setdefault("timeout", DEADLINE)
    return httpx.AsyncClient(base_url=proxy.url, **kw)


async def raw_exchange(port: int, request: bytes) -> bytes:
    """Send raw bytes, read until EOF (ConnectionResetError propagates)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(DEADLINE):
            return await reader.read()
    finally:
        writer.close()


def put_request(path: str, body: bytes) -> bytes:
    head = f"PUT {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


async def test_forwards_keepalive_requests_and_all_framings(
    proxy: FaultProxy, upstream: Upstream
) -> None:
    big = os.urandom(8 * 1024 * 1024)
    async with client(proxy) as c:
        r = await c.get("/a", headers={"X-Test": "1"})
        assert r.json()["path"] == "/a"
        r = await c.put("/upload", content=big)
        assert r.json() == {
            "method": "PUT",
            "path": "/upload",
            "length": len(big),
            "md5": hashlib.md5(big).hexdigest(),
        }
        r = await c.get("/chunked")
        assert r.text == "hello world"
        r = await c.get("/big?n=300000")
        assert r.content == b"x" * 300000
        r = await c.get("/close")  # close-delimited: the proxy closes the client side too
        assert r.text == "until-eof"
        r = await c.post("/after-close", content=b"abc")
        assert r.json()["length"] == 3

    recs = proxy.requests
    assert [(q.method, q.path) for q in recs] == [
        ("GET", "/a"),
        ("PUT", "/upload"),
        ("GET", "/chunked"),
        ("GET", "/big?n=300000"),
        ("GET", "/close"),
        ("POST", "/after-close"),
    ]
    assert all(q.status == 200 and q.delivered and q.fault is None for q in recs)
    assert len({q.conn_id for q in recs[:5]}) == 1, "keep-alive: one client connection"
    assert recs[5].conn_id != recs[0].conn_id
    assert recs[0].headers["x-test"] == "1"
    assert recs[1].body_length == recs[1].body_forwarded == len(big)
    assert [u.complete for u in upstream.received] == [True] * 6


async def test_cut_body_truncates_upstream_and_client_sees_eof(
    proxy: FaultProxy, upstream: Upstream
) -> None:
    proxy.add_rule(Rule(Fault("cut_body", after_bytes=1000), method="PUT"))
    async with client(proxy) as c:
        with pytest.raises(httpx.RemoteProtocolError):
            await c.put("/x", content=b"a" * 100_000)
    await upstream.wait_for(lambda: len(upstream.received) == 1)
    got = upstream.received[0]
    assert not got.complete and got.body == b"a" * 1000
    assert proxy.requests[0].body_forwarded == 1000
    assert proxy.requests[0].status is None and not proxy.requests[0].delivered

    # On the wire: a clean FIN (EOF), not a reset.
    assert await raw_exchange(proxy.port or 0, put_request("/y", b"b" * 5000)) == b""
    await upstream.wait_for(lambda: len(upstream.received) == 2)
    assert upstream.received[1].body == b"b" * 1000


async def test_reset_sends_rst_to_client(proxy: FaultProxy, upstream: Upstream) -> None:
    proxy.add_rule(Rule(Fault("reset", after_bytes=10)))
    with pytest.raises(ConnectionResetError):
        await raw_exchange(proxy.port or 0, put_request("/r", b"c" * 5000))
    await upstream.wait_for(lambda: len(upstream.received) == 1)
    assert upstream.received[0].body == b"c" * 10 and not upstream.received[0].complete

    async with client(proxy) as c:
        with pytest.raises(httpx.TransportError) as info:
            await c.put("/r2", content=b"d" * 200_000)
    chain: list[BaseException] = []
    exc: BaseException | None = info.value
    while exc is not None and len(chain) < 10:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    assert any(isinstance(e, ConnectionResetError) for e in chain), chain


async def test_drop_response_applies_upstream_but_loses_answer(
    proxy: FaultProxy, upstream: Upstream
) -> None:
    proxy.add_rule(Rule(Fault("drop_response"), method="POST", times=1))
    async with client(proxy) as c:
        with pytest.raises(httpx.RemoteProtocolError):
            await c.post("/apply", content=b"payload")
        assert upstream.received[0].complete and upstream.received[0].body == b"payload"
        record = proxy.requests[0]
        assert record.status == 200 and not record.delivered
        r = await c.post("/apply", content=b"again")  # times=1: forwarded now
        assert r.status_code == 200 and r.json()["length"] == 5


async def test_status_fault_answers_without_forwarding(
    proxy: FaultProxy, upstream: Upstream
) -> None:
    proxy.add_rule(
        Rule(
            Fault("status", status=429, retry_after="2", body=b'{"detail": "slow down"}'),
            times=1,
        )
    )
    proxy.add_rule(Rule(Fault("status", status=200, body=b"{not json"), path_contains="/bad"))
    async with client(proxy) as c:
        r = await c.put("/chunk", content=b"z" * 70_000)
        assert r.status_code == 429
        assert r.headers["retry-after"] == "2"
        assert r.json() == {"detail": "slow down"}
        r = await c.put("/chunk", content=b"z" * 10)
        assert r.status_code == 200 and r.json()["length"] == 10
        r = await c.get("/bad")
        assert r.status_code == 200 and r.content == b"{not json"
    assert [u.path for u in upstream.received] == ["/chunk"]
    assert len({q.conn_id for q in proxy.requests}) == 1, "status answers keep the connection"
    assert [q.status for q in proxy.requests] == [429, 200, 200]


async def test_stall_forever_triggers_client_read_timeout(
    proxy: FaultProxy, upstream: Upstream
) -> None:
    proxy.add_rule(Rule(Fault("stall"), path_contains="/a"))
    async with client(proxy, timeout=httpx.Timeout(DEADLINE, read=0.3)) as c:
        with pytest.raises(httpx.ReadTimeout):
            await c.get("/a")
    assert upstream.received[0].complete  # the server did get (and answer) the request

    # Stall after part of the body: the head arrives, then the body stops.
    proxy.clear_rules()
    proxy.add_rule(Rule(Fault("stall", after_bytes=50_000), path_contains="/big"))
    got = 0
    timeout = httpx.Timeout(DEADLINE, read=0.3)
    async with client(proxy, timeout=timeout) as c, c.stream("GET", "/big?n=1000000") as r:
        assert r.status_code == 200
        with pytest.raises(httpx.ReadTimeout):
            async for piece in r.aiter_raw():
                got += len(piece)
    assert 40_000 < got < 50_000


async def test_stall_for_seconds_then_completes(proxy: FaultProxy) -> None:
    proxy.add_rule(Rule(Fault("stall", seconds=0.3)))
    async with client(proxy) as c:
        started = time.monotonic()
        r = await c.get("/big?n=1000")
        assert time.monotonic() - started >= 0.29
        assert r.content == b"x" * 1000


async def test_drip_delivers_slowly_but_completely(proxy: FaultProxy) -> None:
    async def chunks(c: httpx.AsyncClient) -> tuple[int, bytes]:
        pieces = []
        async with c.stream("GET", "/big?n=3000") as r:
            async for piece in r.aiter_raw():
                pieces.append(piece)
        return len(pieces), b"".join(pieces)

    async with client(proxy) as c:
        undripped, body = await chunks(c)
        assert undripped <= 2 and body == b"x" * 3000
        proxy.add_rule(Rule(Fault("drip", drip_rate=10_000)))  # 500-byte slices
        started = time.monotonic()
        dripped, body = await chunks(c)
        elapsed = time.monotonic() - started
    assert body == b"x" * 3000
    assert dripped >= 5
    assert elapsed >= 0.2  # at least (3000 + head - 500) / 10_000 s


async def test_delay_response_holds_applied_answer(proxy: FaultProxy, upstream: Upstream) -> None:
    proxy.add_rule(Rule(Fault("delay_response", seconds=0.4), method="POST"))
    async with client(proxy) as c:
        r = await c.post("/p", content=b"q")
        answered = time.monotonic()
    assert r.json()["length"] == 1
    assert answered - upstream.received[0].at >= 0.39


async def test_nth_times_and_method_matching(proxy: FaultProxy, upstream: Upstream) -> None:
    nth = Rule(Fault("status", status=503), method="put", nth=2)
    times = Rule(Fault("status", status=500), path_contains="/t", times=2)
    proxy.add_rule(nth)
    proxy.add_rule(times)
    async with client(proxy) as c:
        put_codes = [(await c.put("/p", content=b"1")).status_code for _ in range(3)]
        get_codes = [(await c.get("/p")).status_code for _ in range(2)]
        t_codes = [(await c.post("/t")).status_code for _ in range(3)]
    assert put_codes == [200, 503, 200]
    assert get_codes == [200, 200]
    assert t_codes == [500, 500, 200]
    assert (nth.matched, nth.applied, times.matched, times.applied) == (3, 1, 3, 2)
    assert [q.fault is not None for q in proxy.requests] == [
        False,
        True,
        False,
        False,
        False,
        True,
        True,
        False,
    ]
    assert len(upstream.received) == 5


async def test_upstream_refused_closes_client() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    async with FaultProxy("127.0.0.1", dead_port) as p:
        async with client(p) as c:
            with pytest.raises(httpx.RemoteProtocolError):
                await c.get("/x")
        await p.wait_for(lambda px: px.requests and px.requests[0].done, DEADLINE)
        assert "refused" in (p.requests[0].error or "")


class LoopThread:
    """An event loop in a thread, for running the upstream beside a blocking client."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(DEADLINE)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(DEADLINE)
        self.loop.close()


@pytest.fixture
def threaded_upstream() -> Iterator[Upstream]:
    lt = LoopThread()
    server = Upstream()
    lt.run(server.start())
    yield server
    lt.run(server.stop())
    lt.close()


def test_threaded_proxy_with_blocking_client(threaded_upstream: Upstream) -> None:
    with ThreadedFaultProxy("127.0.0.1", threaded_upstream.port) as proxy:
        proxy.add_rule(Rule(Fault("status", status=503), nth=1))
        proxy.add_rule(Rule(Fault("drop_response"), method="PUT", times=1))
        with httpx.Client(base_url=proxy.url, timeout=DEADLINE) as c:
            assert c.get("/one").status_code == 503
            with pytest.raises(httpx.RemoteProtocolError):
                c.put("/two", content=b"x" * 1000)
            assert c.put("/two", content=b"x" * 1000).json()["length"] == 1000
        proxy.wait_for(lambda p: len(p.requests) == 3 and p.requests[-1].done, DEADLINE)
        assert [(q.status, q.delivered) for q in proxy.requests] == [
            (503, True),
            (200, False),
            (200, True),
        ]
        with pytest.raises(TimeoutError):
            proxy.wait_for(lambda p: len(p.requests) == 4, 0.05)
    assert [u.path for u in threaded_upstream.received] == ["/two", "/two"]
