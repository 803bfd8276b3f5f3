"""End to end: the CLI against real servers on loopback (drf-chunked-upload 0.6.0, embedded).

Every test runs against both backends. The CLI runs in a subprocess, as a user runs it.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from synapse_tui.engine.errors import OffsetMismatch
from synapse_tui.engine.protocol import Credentials, ProtocolClient
from tests.harness.proxy import ThreadedFaultProxy

KIB = 1024
MIB = 1024 * KIB


@dataclass
class Backend:
    name: str
    url: str
    token: str
    stored: Callable[[str], bytes]


def _embedded_stored(url: str, token: str) -> Callable[[str], bytes]:
    def stored(upload_id: str) -> bytes:
        headers = {"Synapse-Access-Token": f"Token {token}"}
        info = httpx.get(f"{url}/chunked_upload/{upload_id}/", headers=headers).json()
        return httpx.get(info["file"], headers=headers).content

    return stored


@pytest.fixture(params=["drf", "embedded"])
def backend(request: pytest.FixtureRequest) -> Backend:
    if request.param == "drf":
        srv = request.getfixturevalue("drf_server")
        return Backend("drf", srv.url, srv.token, srv.stored_bytes)
    srv = request.getfixturevalue("embedded_server")
    return Backend("embedded", srv.url, srv.token, _embedded_stored(srv.url, srv.token))


def cli(
    args: list[str], host: str, token: str, state: Path, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, SYNAPSE_HOST=host, SYNAPSE_ACCESS_TOKEN=token)
    env["SYNAPSE_TUI_STATE_DIR"] = str(state)
    return subprocess.run(
        [sys.executable, "-m", "synapse_tui.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_cli(args: list[str], host: str, token: str, state: Path) -> subprocess.Popen[str]:
    env = dict(os.environ, SYNAPSE_HOST=host, SYNAPSE_ACCESS_TOKEN=token)
    env["SYNAPSE_TUI_STATE_DIR"] = str(state)
    return subprocess.Popen(
        [sys.executable, "-m", "synapse_tui.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def events(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def of(kind: str, evs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in evs if e["event"] == kind]


def write(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(size))
    return path


def test_folder_upload_multi_chunk_verified_by_the_server(backend: Backend, tmp_path: Path) -> None:
    data = tmp_path / "data"
    files = [write(data / "a.bin", 3 * MIB + 5), write(data / "sub" / "b.bin", 700 * KIB)]
    write(data / "sub" / "c.bin", 1)
    run = cli(
        ["upload", str(data), "--chunk-size", "1M", "--json"],
        backend.url,
        backend.token,
        tmp_path / "st",
    )
    assert run.returncode == 0, run.stderr
    evs = events(run.stdout)
    done = {e["path"]: e for e in of("file_done", evs)}
    assert len(done) == 3
    for f in files:
        ev = done[str(f)]
        assert ev["md5"] == hashlib.md5(f.read_bytes()).hexdigest()  # the server checked it
        assert backend.stored(ev["upload_id"]) == f.read_bytes()
    [summary] = of("summary", evs)
    assert summary["uploaded"] == 3 and summary["failed"] == 0
    # Uploading again skips everything: the ledger knows it.
    again = cli(["upload", str(data), "--json"], backend.url, backend.token, tmp_path / "st")
    assert again.returncode == 0
    assert len(of("file_skipped", events(again.stdout))) == 3


def journal_offset(state: Path) -> int:
    if not (state / "journal.sqlite3").exists():
        return 0
    db = sqlite3.connect(f"file:{state / 'journal.sqlite3'}?mode=ro", uri=True, timeout=5)
    try:
        row = db.execute("SELECT max(offset) FROM jobs").fetchone()
        return int(row[0] or 0)
    except sqlite3.OperationalError:
        return 0
    finally:
        db.close()


def test_resume_after_sigkill_resends_at_most_one_chunk(backend: Backend, tmp_path: Path) -> None:
    size, chunk = 8 * MIB, 512 * KIB
    src = write(tmp_path / "big.bin", size)
    state = tmp_path / "st"
    host = httpx.URL(backend.url)
    with ThreadedFaultProxy(host.host, host.port or 80) as proxy:
        url = proxy.url + host.path.rstrip("/")
        proc = start_cli(
            ["upload", str(src), "--chunk-size", "512K", "--bwlimit", "2M", "--json"],
            url,
            backend.token,
            state,
        )
        deadline = time.monotonic() + 60
        while journal_offset(state) < 2 * MIB:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "upload made no progress"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        killed_at = journal_offset(state)

        run = cli(["resume", "--json"], url, backend.token, state)
        assert run.returncode == 0, run.stderr
        [done] = of("file_done", events(run.stdout))
        assert done["resumed_from"] >= killed_at
        assert backend.stored(done["upload_id"]) == src.read_bytes()
        puts = [r for r in proxy.requests if r.method == "PUT"]
        overhead = 1024  # multipart head and tail per request
        lengths = [r.body_length for r in puts]
        assert None not in lengths, "a PUT body's length was not recorded"
        sent = sum(n or 0 for n in lengths)
        assert sent <= size + chunk + overhead * len(puts)

    status = cli(["status", "--all", "--json"], url, backend.token, state)
    [job] = events(status.stdout)
    assert job["state"] == "done" and job["offset"] == size


async def test_journal_behind_the_server_resumes_from_the_server_offset(
    backend: Backend, tmp_path: Path
) -> None:
    """A crash after a chunk landed but before the journal noted it."""
    from synapse_tui.engine.journal import Journal
    from synapse_tui.engine.scan import FoundFile, scan

    src = write(tmp_path / "f.bin", 3 * MIB)
    state = tmp_path / "st"
    # The job as the killed process journaled it (nothing uploaded yet).
    found = [i async for batch in scan([os.fsencode(src)]) for i in batch]
    assert isinstance(found[0], FoundFile)
    journal = Journal(state)
    journal.add_job(found[0].path, found[0].identity, found[0].fingerprint, backend.url, MIB)
    journal.close()
    db = sqlite3.connect(state / "journal.sqlite3")
    # Send the first chunk by hand, as the killed process did, and leave the journal at 0.
    first = src.read_bytes()[: 1 * MIB]
    answer = httpx.put(
        backend.url + "/chunked_upload/",
        headers={
            "Synapse-Access-Token": f"Token {backend.token}",
            "Content-Range": f"bytes 0-{MIB - 1}/{3 * MIB}",
        },
        data={"filename": "f.bin"},
        files={"file": ("f.bin", first)},
    ).json()
    db.execute(
        "UPDATE jobs SET host = ?, state = 'uploading', upload_id = ?, upload_url = ?, offset = 0",
        (backend.url, answer["id"], answer["url"]),
    )
    db.commit()
    db.close()
    run = cli(["resume", "--json"], backend.url, backend.token, state)
    assert run.returncode == 0, run.stderr
    [done] = of("file_done", events(run.stdout))
    assert done["resumed_from"] == MIB and done["upload_id"] == answer["id"]
    assert backend.stored(answer["id"]) == src.read_bytes()


async def test_real_offset_mismatch_answer_is_understood(backend: Backend) -> None:
    client = ProtocolClient(backend.url, Credentials(access_token=backend.token))

    def body(data: bytes) -> Callable[[], Any]:
        async def gen() -> Any:
            yield data

        return gen

    info = await client.put_chunk(None, "m.bin", body(b"abcd"), 0, 4, 12)
    with pytest.raises(OffsetMismatch) as mismatch:
        await client.put_chunk(info.url, "m.bin", body(b"efgh"), 8, 4, 12)
    assert mismatch.value.expected == 4
    await client.aclose()


def test_empty_file(backend: Backend, tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    run = cli(["upload", str(empty), "--json"], backend.url, backend.token, tmp_path / "st")
    evs = events(run.stdout)
    if backend.name == "drf":  # drf-chunked-upload refuses empty files: a clear error
        [failed] = of("file_failed", evs)
        assert "empty" in failed["error"] and run.returncode == 1
        assert "Traceback" not in run.stderr
    else:  # the embedded backend stores them
        [done] = of("file_done", evs)
        assert done["md5"] == hashlib.md5(b"").hexdigest() and run.returncode == 0


def test_expired_upload_is_restarted_then_reported(tmp_path: Path) -> None:
    """drf with a zero expiry: every upload expires right after its first chunk (410)."""
    from tests.harness.drf import run_drf_server

    src = write(tmp_path / "f.bin", 2 * MIB)
    with run_drf_server(tmp_path, expire_seconds=0) as srv:
        run = cli(
            ["upload", str(src), "--chunk-size", "1M", "--json"],
            srv.url,
            srv.token,
            tmp_path / "st",
        )
    evs = events(run.stdout)
    [failed] = of("file_failed", evs)
    assert "expired" in failed["error"] and run.returncode == 1
    assert "Traceback" not in run.stderr
    warnings = [e["message"] for e in of("log", evs)]
    assert any("starting a new upload" in w for w in warnings)


def test_missing_and_special_paths_get_one_line_each_and_the_rest_goes_on(
    backend: Backend, tmp_path: Path
) -> None:
    good = write(tmp_path / "good.bin", 10 * KIB)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    run = cli(
        ["upload", str(tmp_path / "missing"), str(fifo), str(good), "--json"],
        backend.url,
        backend.token,
        tmp_path / "st",
        timeout=60,
    )
    evs = events(run.stdout)
    assert [e["path"] for e in of("file_done", evs)] == [str(good)]
    failed = {e["path"]: e["error"] for e in of("file_failed", evs)}
    assert "no such file" in failed[str(tmp_path / "missing")]
    assert "FIFO" in failed[str(fifo)]
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 2


def test_scan_reports_duplicates_and_what_this_backend_already_has(
    backend: Backend, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    first = write(data / "a.bin", 300 * KIB)
    (data / "copy_of_a.bin").write_bytes(first.read_bytes())
    other = write(data / "b.bin", 5 * KIB)
    state = tmp_path / "st"
    upload = cli(["upload", str(other), "--json"], backend.url, backend.token, state)
    assert upload.returncode == 0, upload.stderr
    [done] = of("file_done", events(upload.stdout))
    run = cli(["scan", str(data), "--json"], backend.url, backend.token, state)
    assert run.returncode == 0, run.stderr
    [result] = of("scan", events(run.stdout))
    assert (result["files"], result["bytes"]) == (3, 605 * KIB)
    assert result["duplicate_paths"] == [
        {"path": str(data / "copy_of_a.bin"), "duplicate_of": str(first)}
    ]
    assert result["duplicates"] == 1 and result["already_uploaded"] == 1  # counts, as upload's
    assert result["already_uploaded_paths"] == [
        {"path": str(other), "upload_id": done["upload_id"]}
    ]
    # Without a backend the scan still finds the duplicate, and knows of no uploads.
    alone = subprocess.run(
        [sys.executable, "-m", "synapse_tui.cli", "scan", str(data), "--json"],
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("SYNAPSE_")},
            "HOME": str(tmp_path),  # no config file of the user's, nor of the official SDK
            "SYNAPSE_TUI_CONFIG_DIR": str(tmp_path / "cfg"),
            "SYNAPSE_TUI_STATE_DIR": str(state),
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    [result] = of("scan", events(alone.stdout))
    assert result["duplicates"] == 1 and result["already_uploaded_paths"] == []


def _check(backend: Backend, path: Path, state: Path, token: str | None = None) -> Any:
    r = cli(["check", str(path), "--json", "-j", "4"], backend.url, token or backend.token, state)
    return r, (json.loads(r.stdout) if r.stdout.strip() else None)


def _estimate_of(out: dict[str, Any]) -> float:
    byte_rate = min(out["md5_rate"], out["disk_rate"], out["upload_rate"])
    return float(out["path_bytes"] / byte_rate + out["path_files"] / out["files_rate"])


def test_check_names_the_per_file_cost_for_many_small_files(
    backend: Backend, tmp_path: Path
) -> None:
    data = tmp_path / "many"
    data.mkdir()
    for i in range(40):
        (data / f"f{i:02}").write_bytes(os.urandom(100))
    r, out = _check(backend, data, tmp_path / "state")
    assert r.returncode == 0, r.stderr
    assert out["auth"] == "ok" and (out["path_files"], out["path_bytes"]) == (40, 4000)
    assert out["files_rate"] > 0 and out["upload_rate"] > 0
    assert out["limited_by"] == "files"
    assert out["estimate_seconds"] == pytest.approx(_estimate_of(out), abs=0.06)


def test_check_of_one_large_file_is_limited_by_a_byte_rate(
    backend: Backend, tmp_path: Path
) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(16 * MIB))
    r, out = _check(backend, big, tmp_path / "state")
    assert r.returncode == 0, r.stderr
    assert out["path_files"] == 1 and out["limited_by"] in ("md5", "disk", "upload")
    assert out["estimate_seconds"] == pytest.approx(_estimate_of(out), abs=0.06)
    plain = cli(["check", str(big)], backend.url, backend.token, tmp_path / "state")
    assert "estimate           16.0 MiB in 1 file, about" in plain.stdout


def test_check_with_a_refused_token_says_so_and_sends_no_probe(
    backend: Backend, tmp_path: Path
) -> None:
    r, out = _check(backend, tmp_path, tmp_path / "state", token="n0t-the-t0ken")
    assert r.returncode == 2
    assert "401" in out["auth"] or "403" in out["auth"]
    assert "upload_rate" not in out and "files_rate" not in out
    assert "n0t-the-t0ken" not in r.stdout + r.stderr
