"""HTTP(S) proxies, as the official SDK honours them, through a real forward proxy on loopback.

proxy.py (PyPI) is the proxy; a recording TCP relay in front of it keeps every byte the
client sent, so the tests see what the proxy saw: a CONNECT tunnel and TLS for https (the
token never in the clear), absolute-form requests for http.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from synapse_tui import cli
from synapse_tui.engine.credentials import Credentials
from synapse_tui.engine.protocol import ProtocolClient
from synapse_tui.engine.proxy import Proxies, Proxy, ProxyConfigError
from tests.faults.tls import self_signed, tls_relay
from tests.harness.embedded import EmbeddedServer


class Recorder:
    """A loopback TCP relay to `upstream` that keeps what clients sent through it."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.sent = bytearray()
        self.connections = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _pipe(self, src: socket.socket, dst: socket.socket, record: bool) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                if record:
                    with self._lock:
                        self.sent += data
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def _serve(self, client: socket.socket) -> None:
        with client, socket.create_connection(("127.0.0.1", self.upstream), timeout=10) as up:
            up.settimeout(None)
            back = threading.Thread(target=self._pipe, args=(up, client, False), daemon=True)
            back.start()
            self._pipe(client, up, True)
            back.join(10)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._listener.close()


@pytest.fixture
def forward_proxy(tmp_path: Path) -> Iterator[Recorder]:
    """proxy.py on loopback, behind a recorder; yields the recorder (its `url` is the proxy)."""
    if importlib.util.find_spec("proxy") is None:
        pytest.skip("proxy.py is not installed (pip install -e '.[test]')")
    port_file = tmp_path / "proxy.port"
    proc = subprocess.Popen(
        [sys.executable, "-m", "proxy", "--hostname", "127.0.0.1", "--port", "0",
         "--port-file", str(port_file), "--num-workers", "1", "--num-acceptors", "1",
         "--log-level", "WARNING"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            if proc.poll() is not None or time.monotonic() > deadline:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                pytest.fail(f"proxy.py did not start: {err[-2000:]}")
            time.sleep(0.05)
        recorder = Recorder(int(port_file.read_text()))
        try:
            yield recorder
        finally:
            recorder.close()
    finally:
        proc.terminate()
        proc.wait(10)


def _stored(srv: EmbeddedServer, upload_id: str) -> bytes:
    return (srv.root / "files" / upload_id).read_bytes()


def _upload(
    capsys: pytest.CaptureFixture[str], path: Path, srv: EmbeddedServer, *extra: str
) -> dict[str, object]:
    code = cli.main(
        ["upload", str(path), "--json", "--host", srv.url, "--token", srv.token, *extra]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    [done] = [e for e in map(json.loads, out.splitlines()) if e["event"] == "file_done"]
    return done


@pytest.mark.parametrize("how", ["--proxy", "HTTP_PROXY", "http_proxy"])
def test_http_upload_goes_through_the_proxy_in_absolute_form(
    forward_proxy: Recorder,
    embedded_server: EmbeddedServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    how: str,
) -> None:
    srv = embedded_server
    data = bytes(range(256)) * 600  # 150 KiB: more than one chunk of 64 KiB
    f = tmp_path / "via-proxy.bin"
    f.write_bytes(data)
    extra = ["--chunk-size", "64K"]
    if how == "--proxy":
        extra += ["--proxy", forward_proxy.url]
    else:
        monkeypatch.setenv(how, forward_proxy.url)
    done = _upload(capsys, f, srv, *extra)
    assert _stored(srv, str(done["upload_id"])) == data
    origin = srv.url.removesuffix("/api").encode()
    assert b"PUT " + origin + b"/api/chunked_upload/" in forward_proxy.sent
    assert forward_proxy.connections >= 1


def test_no_proxy_bypasses_the_environments_proxy(
    embedded_server: EmbeddedServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """HTTP_PROXY points at a closed port: the upload fails through it, and succeeds once
    NO_PROXY names the host (as requests does)."""
    with socket.create_server(("127.0.0.1", 0)) as closed:
        dead = f"http://127.0.0.1:{closed.getsockname()[1]}"
    f = tmp_path / "direct.bin"
    f.write_bytes(b"direct")
    monkeypatch.setenv("HTTP_PROXY", dead)
    code = cli.main(["upload", str(f), "--host", embedded_server.url, "--token", "t"])
    err = capsys.readouterr().err
    assert code == 2 and "unreachable" in err
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    done = _upload(capsys, f, embedded_server)
    assert _stored(embedded_server, str(done["upload_id"])) == b"direct"
    monkeypatch.delenv("NO_PROXY")
    done = _upload(capsys, f, embedded_server, "--proxy", "off", "--force")
    assert _stored(embedded_server, str(done["upload_id"])) == b"direct"


@pytest.mark.parametrize("how", ["--proxy", "HTTPS_PROXY"])
async def test_https_goes_through_a_connect_tunnel_and_the_token_stays_inside_tls(
    forward_proxy: Recorder,
    embedded_server: EmbeddedServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    how: str,
) -> None:
    cert, key = self_signed(tmp_path)
    if how == "HTTPS_PROXY":
        monkeypatch.setenv("HTTPS_PROXY", forward_proxy.url)
        monkeypatch.setenv("NO_PROXY", "example.invalid")  # names another host: no bypass
    with tls_relay(cert, key, embedded_server.port) as port:
        client = ProtocolClient(
            f"https://127.0.0.1:{port}/api",
            Credentials(access_token=embedded_server.token),
            verify=str(cert),
            proxy=forward_proxy.url if how == "--proxy" else None,
        )
        try:
            await client.ping()  # authenticated: the token reached the server
            await client.ping()  # the tunnel is kept alive and reused
        finally:
            await client.aclose()
    sent = bytes(forward_proxy.sent)
    assert sent.startswith(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\n".encode())
    assert forward_proxy.connections == 1
    assert embedded_server.token.encode() not in sent
    assert b"Synapse-Access-Token" not in sent and b"/api/" not in sent


async def test_a_proxy_that_refuses_connect_is_a_clear_error(tmp_path: Path) -> None:
    """A proxy answering 407 to CONNECT: the request fails with the proxy's status line."""
    from synapse_tui.engine.errors import TransientError

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def answer() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")

    t = threading.Thread(target=answer, daemon=True)
    t.start()
    client = ProtocolClient(
        "https://127.0.0.1:9/api", Credentials(access_token="tok-x"), proxy=f"127.0.0.1:{port}"
    )
    try:
        with pytest.raises(TransientError, match="407 Proxy Authentication Required"):
            await client.ping()
    finally:
        await client.aclose()
        t.join(5)
        listener.close()


def test_environment_rules_follow_requests() -> None:
    env = {
        "HTTP_PROXY": "http://upper:1",
        "http_proxy": "http://lower:2",  # lower case wins, as in urllib and requests
        "ALL_PROXY": "http://all:3",
        "NO_PROXY": "internal.example, .corp.test,10.0.0.0/8,host.test:8443",
    }
    p = Proxies(env=env)
    assert p.route("http", "api.test", 80).proxy == Proxy("lower", 2)  # type: ignore[union-attr]
    assert p.route("https", "api.test", 443).proxy == Proxy("all", 3)  # type: ignore[union-attr]
    assert p.route("https", "api.test", 443).tunnel  # type: ignore[union-attr]
    for host, port in [("internal.example", 443), ("a.internal.example", 443),
                       ("x.corp.test", 443), ("10.1.2.3", 443), ("host.test", 8443)]:  # fmt: skip
        assert p.route("https", host, port) is None, host
    assert p.route("https", "host.test", 443) is not None
    assert p.route("https", "11.0.0.1", 443) is not None
    assert Proxies(env={"NO_PROXY": "*", "HTTPS_PROXY": "h:1"}).route("https", "a", 1) is None
    assert not Proxies(env={}).active
    # Explicit wins over the environment, NO_PROXY included; "off" ignores the environment.
    explicit = Proxies("http://me:pw@given:8080", env=env)
    route = explicit.route("https", "internal.example", 443)
    assert route is not None and route.proxy.host == "given"
    assert route.proxy.head_lines() == b"Proxy-Authorization: Basic bWU6cHc=\r\n"
    assert "pw" not in repr(route.proxy)
    assert Proxies("off", env=env).route("http", "api.test", 80) is None


@pytest.mark.parametrize("url", ["socks5://h:1", "https://h:1", "http://h:notaport", "http://"])
def test_unusable_proxy_urls_are_refused(url: str) -> None:
    with pytest.raises(ProxyConfigError):
        Proxy.parse(url)


def test_a_bad_proxy_option_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["status", "--proxy", "socks5://h:1"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.splitlines() == [
        "synapse-tui: error: unsupported proxy scheme 'socks5': only http:// proxies are supported"
    ]
