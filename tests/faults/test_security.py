"""Security rows: the token stays secret and at home; no redirects; private files."""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from synapse_tui.engine.events import JobState
from tests.faults.crash import Cli
from tests.faults.helpers import (
    CHUNK,
    TimedProxy,
    make_file,
    run_engine,
    uploads_named,
    via,
)
from tests.harness.drf import DrfServer
from tests.harness.proxy import Fault, Rule, ThreadedFaultProxy


def _state_bytes(state: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(state.rglob("*")) if p.is_file())


def test_token_never_in_output_or_journal(drf: DrfServer, tmp_path: Path) -> None:
    """Verbose text and JSON runs, with retries, a server that echoes the token in an
    error body, a failed file and a paused one: the token appears nowhere in stdout,
    stderr, `status` or the journal's bytes (database, WAL, locks)."""
    token = drf.token
    echo = f'{{"detail": "bad request from {token}"}}'.encode()
    ok = make_file(tmp_path / "secret-ok.bin", 2 * CHUNK)
    rejected = make_file(tmp_path / "secret-rejected.bin", 2 * CHUNK, seed=1)
    stormed = make_file(tmp_path / "secret-storm.bin", 2 * CHUNK, seed=2)
    state = tmp_path / "state"
    outputs = []
    with ThreadedFaultProxy("127.0.0.1", drf.port) as proxy:
        cli = Cli(proxy.url + "/api", token, state)
        for mode in (["--json", "-v"], ["-v"]):
            proxy.clear_rules()
            proxy.add_rule(Rule(Fault("status", status=503, body=echo), method="PUT", times=2))
            result = cli.run("upload", str(ok), "--force", "--chunk-size", "64K", *mode)
            assert result.returncode == 0, result.stderr
            outputs += [result.stdout, result.stderr]
        proxy.clear_rules()
        proxy.add_rule(Rule(Fault("status", status=400, body=echo), method="PUT"))
        result = cli.run("upload", str(rejected), "--json", "-v", "--chunk-size", "64K")
        assert result.returncode == 1 and result.of("file_failed"), result.stdout
        outputs += [result.stdout, result.stderr]
        proxy.clear_rules()
        proxy.add_rule(Rule(Fault("status", status=503, body=echo), method="PUT"))
        result = cli.run("upload", str(stormed), "-v", "--retries", "1", "--chunk-size", "64K")
        assert result.returncode == 1, result.stderr
        outputs += [result.stdout, result.stderr]
        for args in (["status", "--all"], ["status", "--all", "--json"]):
            result = cli.run(*args)
            outputs += [result.stdout, result.stderr]
        # the token travelled, but only as the header, never in a URL (the start-up check's
        # second GET of an upload that cannot exist goes without any credentials)
        probe = "/chunked_upload/00000000-0000-0000-0000-000000000000/"
        assert all(
            r.headers.get("synapse-access-token") == f"Token {token}"
            or (r.path.endswith(probe) and "synapse-access-token" not in r.headers)
            for r in proxy.requests
        )
        assert not any(token in r.path for r in proxy.requests)
    text = "\n".join(outputs)
    assert "bad request from" in text  # the echoed message was shown...
    assert token not in text  # ...with the token cut out
    assert token.encode() not in _state_bytes(state)


async def test_token_never_in_logs_or_exceptions(
    drf: DrfServer, proxy: TimedProxy, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Every logger at DEBUG (httpx, httpcore, the engine) during an upload with faults
    and an auth failure: the token is in no log record and no exception text."""
    caplog.set_level(logging.DEBUG)
    f = make_file(tmp_path / "secret-logs.bin", 3 * CHUNK)
    proxy.add_rule(Rule(Fault("reset", after_bytes=100), method="PUT", nth=2))
    proxy.add_rule(Rule(Fault("status", status=401, body=b"{}"), method="PUT", nth=4))
    out = await run_engine(via(proxy), drf.token, [f], tmp_path / "state")
    assert out.fatal
    texts = [caplog.text] + [repr(e) for e in out.events]
    from synapse_tui.engine.errors import AuthError
    from synapse_tui.engine.protocol import Credentials, ProtocolClient

    wrong = Credentials(access_token=drf.token + "-revoked")
    client = ProtocolClient(via(proxy), wrong)
    try:
        with pytest.raises(AuthError) as caught:
            await client.ping()
    finally:
        await client.aclose()
    texts += [repr(caught.value), str(caught.value), repr(wrong), str(wrong), caplog.text]
    assert not any(drf.token in t for t in texts)


@asynccontextmanager
async def recorder() -> AsyncIterator[list[bytes]]:
    """A loopback server that records whatever any client sends it, and answers 200."""
    received: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.read(65536)
        received.append(data)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    received.append(str(server.sockets[0].getsockname()[1]).encode())
    try:
        yield received
    finally:
        server.close()
        await server.wait_closed()


async def test_upload_url_for_another_origin_is_refused(
    drf: DrfServer, proxy: TimedProxy, tmp_path: Path
) -> None:
    """The first PUT's answer names an upload URL on another port: everything stops with
    an origin error, and that other server never hears from us (no token leaves)."""
    f = make_file(tmp_path / "off-origin.bin", 2 * CHUNK)
    async with recorder() as received:
        port = int(received.pop(0))
        body = (
            f'{{"id": "u1", "url": "http://127.0.0.1:{port}/api/chunked_upload/u1/",'
            f' "offset": {CHUNK}, "status": 1}}'
        ).encode()
        proxy.add_rule(Rule(Fault("status", status=200, body=body), method="PUT", nth=1))
        out = await run_engine(via(proxy), drf.token, [f], tmp_path / "state")
        await asyncio.sleep(0)
    assert len(out.fatal) == 1 and "outside the configured origin" in out.fatal[0].error
    assert received == []
    assert out.states() == [JobState.PAUSED]


async def test_https_to_http_downgrade_is_refused(tmp_path: Path) -> None:
    """Configured https://; the server answers an http:// URL on the same host: refused,
    nothing is ever sent over http://."""
    f = make_file(tmp_path / "downgrade.bin", 2 * CHUNK)
    schemes: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        schemes.append(request.url.scheme)
        if request.method == "GET":
            return httpx.Response(404, json={"detail": "Not found."})
        body = {"id": "u1", "url": "http://example.test/api/chunked_upload/u1/"}
        return httpx.Response(200, json={**body, "offset": CHUNK, "status": 1})

    out = await run_engine(
        "https://example.test/api",
        "tok-downgrade",
        [f],
        tmp_path / "state",
        transport=httpx.MockTransport(handler),
    )
    assert len(out.fatal) == 1 and "outside the configured origin" in out.fatal[0].error
    assert schemes and set(schemes) == {"https"}


async def test_redirects_are_not_followed(
    drf: DrfServer, proxy: TimedProxy, tmp_path: Path
) -> None:
    """PUT 2 answers 307 to another server: the file fails with the reason, the other
    server gets nothing."""
    f = make_file(tmp_path / "redirect.bin", 3 * CHUNK)
    async with recorder() as received:
        port = int(received.pop(0))
        location = {"Location": f"http://127.0.0.1:{port}/steal"}
        proxy.add_rule(Rule(Fault("status", status=307, headers=location), method="PUT", nth=2))
        out = await run_engine(via(proxy), drf.token, [f], tmp_path / "state")
        await asyncio.sleep(0)
    assert received == []
    assert len(out.failed) == 1 and "redirect" in out.failed[0].error
    assert [u["status"] for u in uploads_named(drf.url, drf.token, f)] == [1]


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


async def test_journal_and_config_are_private(
    drf: DrfServer, proxy: TimedProxy, tmp_path: Path
) -> None:
    """With umask 0, after an upload: the state folder and lock folder are 0700, the
    journal database, its WAL/SHM and lock files 0600; the config file 0600 in 0700."""
    from synapse_tui.config import own_config_file, save_own_config

    old = os.umask(0)
    try:
        state = tmp_path / "state"
        f = make_file(tmp_path / "private.bin", 2 * CHUNK)
        out = await run_engine(via(proxy), drf.token, [f], state)
        assert len(out.done) == 1
        # A config folder synapse-tui creates is 0700 (the fixture's own, made 0755
        # before, would be used as it is: an existing folder is never chmod-ed).
        own_config_file().parent.rmdir()
        save_own_config({"host": drf.url, "access_token": drf.token})
    finally:
        os.umask(old)
    assert _mode(state) == 0o700
    files = [p for p in state.rglob("*") if p.is_file()]
    assert any(p.name == "journal.sqlite3" for p in files)
    for p in files:
        assert _mode(p) == 0o600, (p, oct(_mode(p)))
    for d in [p for p in state.rglob("*") if p.is_dir()]:
        assert _mode(d) == 0o700, d
    config = own_config_file()
    assert _mode(config) == 0o600 and _mode(config.parent) == 0o700


def test_config_is_written_atomically(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A failure while saving the config (here: the final rename) leaves the previous
    file whole: written to a temporary file, then renamed over."""
    import json

    from synapse_tui import paths
    from synapse_tui.config import own_config_file, save_own_config

    save_own_config({"host": "http://127.0.0.1:1/api"})
    before = own_config_file().read_bytes()

    def broken_replace(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(paths, "_replace", broken_replace)  # this module's seam, not os
    with pytest.raises(OSError):
        save_own_config({"host": "http://127.0.0.1:2/api", "concurrency": 8})
    assert own_config_file().read_bytes() == before
    assert json.loads(before)["host"] == "http://127.0.0.1:1/api"


def test_token_never_in_screenshots() -> None:
    """The dashboard's snapshot screenshots (tests/ui) never show a token the UI tests
    configure or type: the settings screen masks it."""
    folder = Path(__file__).resolve().parents[1] / "ui" / "__snapshots__"
    shots = sorted(folder.rglob("*.svg"))
    if not shots:
        pytest.skip("no dashboard snapshots yet")
    secrets = ["ui-test-token-0123456789", "hunter2-secret-token", "old-token"]
    for shot in shots:
        text = shot.read_text(errors="replace").replace("&#160;", " ")
        leaked = [s for s in secrets if s in text]
        assert not leaked, (shot.name, leaked)
