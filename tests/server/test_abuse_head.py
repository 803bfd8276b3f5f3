"""Request heads are capped (431, connection closed, memory flat) with either HTTP parser."""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from synapse_tui.server import BackgroundServer, ServerConfig
from synapse_tui.server.limits import MAX_HEAD_BYTES, MAX_HEADERS, MAX_PIPELINED
from tests.harness.embedded import TOKEN
from tests.server.helpers import auth, put, raw_chunk, wait_until

PROTOCOLS = ["httptools", "h11"]


def protocol_class(name: str) -> Any:
    if name == "h11":
        from synapse_tui.server.h11_protocol import CappedH11Protocol

        return CappedH11Protocol
    pytest.importorskip("httptools")
    from synapse_tui.server.http_protocol import LeanHttpToolsProtocol

    return LeanHttpToolsProtocol


@pytest.fixture(params=PROTOCOLS)
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BackgroundServer]:
    config = ServerConfig(root=tmp_path / "root", tokens=[TOKEN], prefix="/api")
    srv = BackgroundServer(config, http=protocol_class(request.param))
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def exchange(port: int, data: bytes) -> bytes:
    """Send `data` on a new connection, then read until the server closes it (or 10 s)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        # The server may stop reading early: what it answered is still readable.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(data)
        answer = b""
        try:
            while got := sock.recv(65536):
                answer += got
        except ConnectionResetError:
            pass
        return answer


REQUEST_LINE = b"GET /api/chunked_upload/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"


@pytest.mark.parametrize(
    "head",
    [
        # one long header, never finished: refused without waiting for its end
        REQUEST_LINE + b"X-Long: " + b"a" * (MAX_HEAD_BYTES + 1024),
        # a complete head of small fields, one too many
        REQUEST_LINE + b"".join(b"X-F%d: v\r\n" % i for i in range(MAX_HEADERS)) + b"\r\n",
        # a complete head over the size cap in a few big fields
        REQUEST_LINE + b"".join(b"X-B%d: %s\r\n" % (i, b"b" * 8000) for i in range(9)) + b"\r\n",
    ],
    ids=["long-unfinished", "too-many", "too-big"],
)
def test_oversized_head_is_431_and_the_connection_closed(
    server: BackgroundServer, head: bytes
) -> None:
    answer = exchange(server.port, head)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert answer.endswith(b"Request header fields too large")


def test_heads_within_the_caps_are_served(server: BackgroundServer) -> None:
    fields = {f"X-Field-{i}": "v" * 500 for i in range(MAX_HEADERS - 10)}
    with httpx.Client(timeout=30) as client:
        r = client.get(server.url + "/chunked_upload/", headers={**auth(TOKEN), **fields})
        assert r.status_code == 200, r.text
        # Big bodies on one keep-alive connection: the body is never counted as head.
        data = os.urandom(3 << 20)
        r = put(client, server.url + "/chunked_upload/", data[: 2 << 20], token=TOKEN,
                total=len(data))  # fmt: skip
        assert r.status_code == 200, r.text
        url = r.json()["url"]
        r = put(client, url, data[2 << 20 :], token=TOKEN, start=2 << 20, total=len(data))
        assert r.status_code == 200, r.text
        assert client.get(url, headers={**auth(TOKEN), **fields}).json()["offset"] == len(data)


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def flood(port: int, total: int, field: bytes) -> int:
    """Send up to `total` bytes of header fields without ending the head; returns bytes sent.

    The connection stays open (if the server lets it) until the caller reads `rss()`."""
    block = field * ((1 << 20) // len(field))
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sent = 0
    try:
        sock.sendall(REQUEST_LINE)
        while sent < total:
            sock.sendall(block)
            sent += len(block)
    except (BrokenPipeError, ConnectionResetError):
        pass
    flooded.append(sock)
    return sent


flooded: list[socket.socket] = []


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs /proc to read RSS")
@pytest.mark.parametrize(
    "field", [b"X-P: a\r\n", b"X-Pad: " + b"p" * 1000 + b"\r\n"], ids=["small", "1k"]
)
def test_header_flood_keeps_memory_flat_and_others_served(
    server: BackgroundServer, field: bytes
) -> None:
    # The server runs in this process: its memory is ours. 64 MiB of small fields made
    # the old server hold ~10x that; now it stops reading after MAX_HEAD_BYTES.
    before = rss()
    served: list[int] = []

    def other_client() -> None:
        with httpx.Client(timeout=30) as client:
            for _ in range(5):
                served.append(client.get(server.url + "/chunked_upload/", headers=auth(TOKEN))
                              .status_code)  # fmt: skip

    other = threading.Thread(target=other_client)
    other.start()
    try:
        flood(server.port, 64 << 20, field)
        grown = rss() - before
    finally:
        for sock in flooded:
            sock.close()
        flooded.clear()
        other.join(60)
    assert grown < 16 << 20, f"RSS grew by {grown >> 20} MiB"
    assert served == [200] * 5


def test_a_head_limit_check_never_answers_a_served_request(
    server: BackgroundServer,
) -> None:
    # Two requests pipelined in one write, each within the caps: both answered.
    one = REQUEST_LINE + b"Synapse-Access-Token: Token " + TOKEN.encode() + b"\r\n\r\n"
    last = one.replace(b"Host:", b"Connection: close\r\nHost:")
    answer = exchange(server.port, one + last)
    assert answer.count(b"HTTP/1.1 200 ") == 2, answer[:300]


def test_pipelined_requests_within_the_cap_are_all_answered(server: BackgroundServer) -> None:
    one = REQUEST_LINE + b"Synapse-Access-Token: Token " + TOKEN.encode() + b"\r\n\r\n"
    last = one.replace(b"Host:", b"Connection: close\r\nHost:")
    answer = exchange(server.port, one * MAX_PIPELINED + last)
    assert answer.count(b"HTTP/1.1 200 ") == MAX_PIPELINED + 1, answer[:300]


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs /proc to read RSS")
def test_deep_pipelining_keeps_memory_flat(tmp_path: Path) -> None:
    # 4 MiB of tiny pipelined requests, answers never read: the old server queued one
    # request object per head it parsed (~250 MiB); now the connection is dropped.
    # (h11 parses one request at a time and pauses: it never had this problem.)
    config = ServerConfig(root=tmp_path / "root", tokens=[TOKEN], prefix="/api")
    tiny = b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n"
    with BackgroundServer(config, http=protocol_class("httptools")) as server:
        before = rss()
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                sock.sendall(tiny * ((4 << 20) // len(tiny)))
            sock.settimeout(0.2)
            bound = 32 << 20
            wait_until(lambda: closed(sock) or rss() - before > bound, "a close", timeout=30)
            grown = rss() - before
    assert grown < bound, f"RSS grew by {grown >> 20} MiB"


def closed(sock: socket.socket) -> bool:
    """Read what is there; True once the server has closed the connection."""
    try:
        while sock.recv(1 << 20):
            pass
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return True


@pytest.mark.parametrize(
    "sent", [b"", REQUEST_LINE, b"G"], ids=["nothing", "unfinished", "after-an-answer"]
)
def test_a_head_that_never_completes_is_dropped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sent: bytes
) -> None:
    # Nothing at all, an unfinished head, or one byte of the next head after an answer:
    # the connection is closed once the head deadline passes.
    from synapse_tui.server import limits

    monkeypatch.setattr(limits, "HEAD_TIMEOUT", 0.5)
    config = ServerConfig(root=tmp_path / "root", tokens=[TOKEN], prefix="/api")
    for name in PROTOCOLS:
        with BackgroundServer(config, http=protocol_class(name)) as server:
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            with sock:
                if sent == b"G":  # one byte of a second head, once the first is answered
                    sock.sendall(b"GET /api/chunked_upload/ HTTP/1.1\r\nHost: a\r\n\r\n")
                    assert sock.recv(100).startswith(b"HTTP/1.1 401 ")
                sock.sendall(sent)
                sock.settimeout(0.1)
                wait_until(functools.partial(closed, sock), f"{name} to close", timeout=10)


def test_the_head_deadline_spares_a_running_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A body arriving for longer than the head deadline (but never idle for the body
    # timeout) is not cut: the deadline only concerns connections with nothing running.
    from synapse_tui.server import limits

    monkeypatch.setattr(limits, "HEAD_TIMEOUT", 0.3)
    config = ServerConfig(root=tmp_path / "root", tokens=[TOKEN], prefix="/api")
    for name in PROTOCOLS:
        with BackgroundServer(config, http=protocol_class(name)) as server:
            data = b"d" * 3000
            raw, head, tail = raw_chunk(server.url + "/chunked_upload/", TOKEN, 3000, 0, 3000)
            try:
                raw.send(head)
                for start in range(0, len(data), 1000):
                    time.sleep(0.2)  # the client's pace (what is tested), not a wait
                    raw.send(data[start : start + 1000])
                raw.send(tail)
                status, body = raw.response()
            finally:
                raw.close()
            assert (status, body["offset"]) == (200, 3000), name
