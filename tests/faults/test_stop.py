"""Faults that stop work: auth lost mid-batch, no server, TLS failures, expired uploads."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from synapse_tui.engine.events import JobState
from tests.faults.crash import Cli, journal_rows
from tests.faults.helpers import (
    CHUNK,
    TimedProxy,
    assert_stored_once,
    make_file,
    run_engine,
    uploads_named,
    via,
)
from tests.faults.tls import self_signed, tls_relay
from tests.harness.drf import DrfServer, run_drf_server
from tests.harness.proxy import Fault, Rule, ThreadedFaultProxy


@pytest.mark.parametrize("status", [401, 403])
async def test_auth_lost_mid_batch_stops_everything_resumable(
    drf: DrfServer, proxy: TimedProxy, tmp_path: Path, status: int
) -> None:
    """After 5 PUTs every request answers 401/403: one fatal stop, nothing failed, every
    unfinished job paused (resumable); `resume` with a good token then finishes them."""
    files = [make_file(tmp_path / f"auth{status}-{i}.bin", 4 * CHUNK, seed=i) for i in range(4)]
    denied = Rule(Fault("status", status=status, body=b'{"detail":"Invalid token."}'))

    def revoke(method: str, path: str) -> None:
        if method == "PUT" and len(proxy.puts()) >= 5 and denied not in proxy.rules:
            proxy.add_rule(denied)

    proxy.hooks.append(revoke)
    state = tmp_path / "state"
    out = await run_engine(via(proxy), drf.token, files, state, concurrency=2)
    assert len(out.fatal) == 1 and str(status) in out.fatal[0].error
    assert [e for e in out.failed if not e.resumable] == []
    states = out.states()
    assert JobState.FAILED not in states
    assert all(s in (JobState.PAUSED, JobState.DONE) for s in states), states
    assert states.count(JobState.PAUSED) >= 2

    proxy.clear_rules()
    proxy.hooks.clear()
    again = await run_engine(via(proxy), drf.token, [], state, resume=True)
    assert len(again.done) + len(out.done) == 4, again.events
    for f in files:
        assert_stored_once(drf, f)


def test_auth_lost_mid_batch_cli_exits_2(drf: DrfServer, tmp_path: Path) -> None:
    """The CLI: a 403 on the 3rd PUT -> exit 2, an auth error line, no file failed."""
    files = [make_file(tmp_path / f"cli-auth-{i}.bin", 3 * CHUNK, seed=i) for i in range(3)]
    with ThreadedFaultProxy("127.0.0.1", drf.port) as proxy:
        proxy.add_rule(Rule(Fault("status", status=403, body=b"{}"), method="PUT", nth=3))
        cli = Cli(proxy.url + "/api", drf.token, tmp_path / "state")
        result = cli.run("upload", *map(str, files), "--json", "--chunk-size", "64K")
    assert result.returncode == 2, result.stderr
    assert "authentication failed (403)" in result.stderr
    assert result.summary["failed"] == 0
    rows = cli.status()
    assert rows and all(r["state"] in ("paused", "done") for r in rows), rows


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_connection_refused_at_start(tmp_path: Path) -> None:
    """Nothing listens: a clear one-line error, exit 2, quickly, and the journal (holding
    an unfinished job from an earlier run) is left exactly as it was."""
    from synapse_tui.engine.hashing import Identity
    from synapse_tui.engine.journal import Journal

    f = make_file(tmp_path / "refused.bin", CHUNK)
    state = tmp_path / "state"
    host = f"http://127.0.0.1:{_closed_port()}/api"
    journal = Journal(state)
    journal.add_job(
        str(tmp_path / "earlier.bin").encode(), Identity(10, 1, 2, 3), "ab" * 16, host, CHUNK
    )
    journal.close()
    before = journal_rows(state)
    for args in (["upload", str(f), "--json"], ["resume", "--json"]):
        result = Cli(host, "secret-token-refused", state).run(*args)
        assert result.returncode == 2, (result.returncode, result.stderr)
        assert result.elapsed < 15
        [line] = result.stderr.strip().splitlines()
        assert "cannot connect" in line and "secret-token" not in line
        assert journal_rows(state) == before


def test_tls_to_a_plain_http_server_fails_fast(drf: DrfServer, tmp_path: Path) -> None:
    """An https:// host that speaks plain HTTP: TLS fails, exit 2 at once, no retry loop,
    and nothing reached the server in plain HTTP (no upload of the file exists)."""
    f = make_file(tmp_path / "tls-plain.bin", CHUNK)
    cli = Cli(f"https://127.0.0.1:{drf.port}/api", drf.token, tmp_path / "state")
    result = cli.run("upload", str(f), "--json")
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert result.elapsed < 15
    assert "TLS" in result.stderr or "SSL" in result.stderr
    assert uploads_named(drf.url, drf.token, f) == []
    assert journal_rows(tmp_path / "state") == []


@pytest.mark.parametrize(("size", "status"), [(2 * CHUNK, 1), (CHUNK, 2)])
def test_tls_self_signed_is_refused_unless_trusted(
    drf: DrfServer, tmp_path: Path, size: int, status: int
) -> None:
    """A self-signed certificate: refused by default (fatal, fast). With --ca-bundle or
    --insecure the handshake passes -- and then the server's http:// upload URLs are
    refused as a downgrade, so the token never travels in plain HTTP. A file of two chunks
    stops after its first (status 1); one sent whole was complete in that one request."""
    cert, key = self_signed(tmp_path)
    f = make_file(tmp_path / f"tls-self-{size}.bin", size)
    with tls_relay(cert, key, drf.port) as port:
        cli = Cli(f"https://127.0.0.1:{port}/api", drf.token, tmp_path / "state")
        refused = cli.run("upload", str(f), "--json")
        assert refused.returncode == 2, refused.stderr
        assert "certificate" in refused.stderr.lower()
        assert refused.elapsed < 15
        for flag in (["--ca-bundle", str(cert)], ["--insecure"]):
            trusted = cli.run("upload", str(f), "--json", "--chunk-size", "64K", *flag)
            assert "certificate" not in trusted.stderr.lower(), trusted.stderr
            assert "outside the configured origin" in trusted.stderr, trusted.stderr
            assert trusted.returncode == 2
    assert [u["status"] for u in uploads_named(drf.url, drf.token, f)] in ([status], [status] * 2)


async def test_expired_upload_410_starts_a_new_one(
    drf: DrfServer, proxy: TimedProxy, tmp_path: Path
) -> None:
    """PUT 3 answers 410 (expired): a new upload is started from byte 0 and finishes."""
    f = make_file(tmp_path / "expired-410.bin", 3 * CHUNK)
    proxy.add_rule(
        Rule(
            Fault("status", status=410, body=b'{"detail":"Upload has expired"}'),
            nth=3,
            method="PUT",
        )
    )
    out = await run_engine(via(proxy), drf.token, [f], tmp_path / "state")
    assert len(out.done) == 1 and out.done[0].resumed_from == 0, out.events
    assert any("starting a new upload" in m for m in out.logs("warning"))
    assert sorted(u["status"] for u in uploads_named(drf.url, drf.token, f)) == [1, 2]
    assert_stored_once(drf, f, upload_id=out.done[0].upload_id)


async def test_server_that_always_expires_gives_up(tmp_path: Path) -> None:
    """drf with a zero lifetime: every upload expires after its first chunk. The file
    fails after a bounded number of new uploads, with the reason."""
    f = make_file(tmp_path / "always-expired.bin", 2 * CHUNK)
    with run_drf_server(tmp_path, expire_seconds=0) as srv:
        out = await run_engine(srv.url, srv.token, [f], tmp_path / "state")
        assert out.done == []
        assert len(out.failed) == 1 and "expired" in out.failed[0].error
        assert 2 <= len(uploads_named(srv.url, srv.token, f)) <= 4


async def test_warns_when_the_eta_passes_the_expiry(
    drf: DrfServer, proxy: TimedProxy, tmp_path: Path
) -> None:
    """At 64 KiB/s a 2 MiB file takes ~30 s; with a 2 s expiry one warning comes early."""
    import asyncio

    from synapse_tui.engine.events import Event, LogMessage
    from synapse_tui.engine.scheduler import UploadManager

    f = make_file(tmp_path / "eta-expiry.bin", 32 * CHUNK)
    seen: list[Event] = []

    async def pause_after_warning(m: UploadManager) -> None:
        m.subscribe(seen.append)
        while not any(isinstance(e, LogMessage) and "expiry" in e.message for e in seen):
            await asyncio.sleep(0.05)
        m.pause_all()

    out = await run_engine(
        via(proxy),
        drf.token,
        [f],
        tmp_path / "state",
        during=pause_after_warning,
        bwlimit=64 * 1024,
        expiry=2.0,
        timeout=30,
    )
    warnings = [m for m in out.logs("warning") if "expiry" in m]
    assert len(warnings) == 1, out.logs()
    assert out.states() == [JobState.PAUSED]


def test_5xx_storm_cli_leaves_the_file_resumable(drf: DrfServer, tmp_path: Path) -> None:
    """The CLI in a 503 storm with `--retries 1` (instead of a real ten-minute storm):
    exit 1, the file reported paused and resumable, `status` says paused with the
    reason; `resume` after the storm finishes it from where it was."""
    f = make_file(tmp_path / "cli-storm.bin", 3 * CHUNK)
    with ThreadedFaultProxy("127.0.0.1", drf.port) as proxy:
        proxy.add_rule(Rule(Fault("delay_response", seconds=0), method="PUT", nth=1))
        proxy.add_rule(Rule(Fault("status", status=503), method="PUT"))
        cli = Cli(proxy.url + "/api", drf.token, tmp_path / "state")
        result = cli.run("upload", str(f), "--json", "--retries", "1", "--chunk-size", "64K")
        assert result.returncode == 1, result.stderr
        assert [e["resumable"] for e in result.of("file_failed")] == [True]
        assert (result.summary["failed"], result.summary["resumable"]) == (0, 1)
        [row] = cli.status()
        assert (row["state"], row["offset"]) == ("paused", CHUNK)
        assert "503" in row["last_error"]
        proxy.clear_rules()
        again = cli.run("resume", "--json")
    assert again.returncode == 0, again.stderr
    assert [d["resumed_from"] for d in again.of("file_done")] == [CHUNK]
    assert_stored_once(drf, f)


class _TLSFailingTransport:
    """Wraps the real transport; from the `at`-th request on, `times` times, the
    connection fails in the TLS handshake with `error` (as httpx reports it)."""

    def __init__(self, error: Exception, at: int, times: int = 1_000) -> None:
        import httpx

        self.inner = httpx.AsyncHTTPTransport()
        self.error = error
        self.at = at
        self.times = times
        self.count = 0
        self.failed = 0

    async def handle_async_request(self, request: object) -> object:
        import httpx

        self.count += 1
        if self.count >= self.at and self.failed < self.times:
            self.failed += 1
            try:
                raise self.error
            except Exception as cause:
                raise httpx.ConnectError(str(cause)) from cause
        return await self.inner.handle_async_request(request)  # type: ignore[arg-type]

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_tls_verification_failure_mid_run_is_fatal_at_once(
    drf: DrfServer, proxy: TimedProxy, tmp_path: Path
) -> None:
    """Mid-upload, a new connection meets a certificate that does not verify (a changed
    certificate, an interception): everything stops at once with a TLS error -- no retry
    loop, nothing sent elsewhere -- and the job stays resumable."""
    import ssl

    import httpx

    f = make_file(tmp_path / "tls-mid-run.bin", 4 * CHUNK)
    error = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] self-signed")
    transport = _TLSFailingTransport(error, at=3)
    out = await run_engine(
        via(proxy),
        drf.token,
        [f],
        tmp_path / "state",
        transport=transport,
        retries=8,
    )
    assert transport.failed == 1, "retried after a certificate failure"
    assert len(out.fatal) == 1 and "TLS" in out.fatal[0].error, out.events
    assert out.states() == [JobState.PAUSED]
    assert isinstance(transport.inner, httpx.AsyncHTTPTransport)


async def test_tls_eof_during_handshake_is_retried(
    drf: DrfServer, proxy: TimedProxy, tmp_path: Path
) -> None:
    """A connection cut during the TLS handshake (EOF) is a network fault, not a TLS
    refusal: retried, and the upload finishes."""
    import ssl

    f = make_file(tmp_path / "tls-eof.bin", 4 * CHUNK)
    error = ssl.SSLEOFError(8, "EOF occurred in violation of protocol")
    transport = _TLSFailingTransport(error, at=3, times=2)
    out = await run_engine(
        via(proxy),
        drf.token,
        [f],
        tmp_path / "state",
        transport=transport,
    )
    assert transport.failed == 2
    assert len(out.done) == 1, out.events
    assert_stored_once(drf, f)
