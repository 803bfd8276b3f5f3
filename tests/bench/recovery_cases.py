"""Case 9c: an engine SIGKILLed with a million files in its journal, and `resume`'s recovery."""

from __future__ import annotations

import contextlib
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.bench.cases import Context
from tests.bench.scale_cases import TINY, make_tiny_files
from tests.bench.support import REPO_ROOT, Backend, cli, client_env, embedded_server, say

KILL_TIMEOUT = 6 * 3600.0  # the scan of a million files on a loaded 2-core machine: ~1 h
RECOVER_TIMEOUT = 1800.0


@dataclass
class Recovery:
    rows: int  # jobs in the journal when the engine was killed
    done_before: int  # of which uploaded
    seconds: float  # `resume` started -> its first file uploaded (recovery + one upload)
    peak_rss: float  # MiB, the resuming process's VmHWM at that moment
    scan_seconds: float  # the killed run: start -> kill


def vm_hwm(pid: int) -> float:
    """Peak RSS (MiB) of a live process, from /proc (0 when unreadable)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def journal_counts(state: Path) -> tuple[int, int]:
    """(rows, done rows) of a journal another process writes (read-only, WAL)."""
    try:
        db = sqlite3.connect(f"file:{state / 'journal.sqlite3'}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error:
        return 0, 0
    try:
        rows, done = db.execute(
            "SELECT COUNT(*), COALESCE(SUM(state = 'done'), 0) FROM jobs"
        ).fetchone()
        return int(rows), int(done)
    except sqlite3.Error:
        return 0, 0
    finally:
        db.close()


def _stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGINT) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def kill_when_queued(
    b: Backend, folder: Path, state: Path, count: int, out: Path, limit: str | None = None
) -> Recovery:
    """`upload --foreground` until every file is a journal row (the scan is over, uploads
    run), then SIGKILL it: what `resume` then recovers is the whole queue. `limit`: a
    `--bwlimit`, so that few files are done by then (a small run can finish first)."""
    env = client_env(b.url, b.token, state)
    args = cli("upload", str(folder), "--json", "--chunk-size", "50M", "--foreground")
    if limit:
        args += ["--bwlimit", limit]
    started = time.monotonic()
    with out.open("wb") as sink:
        proc = subprocess.Popen(args, env=env, stdout=sink, stderr=subprocess.STDOUT, cwd=REPO_ROOT)
    try:
        rows = done = 0
        while rows < count:
            if proc.poll() is not None:
                raise RuntimeError(f"upload ended ({proc.returncode}) before the kill: {rows}")
            if time.monotonic() - started > KILL_TIMEOUT:
                raise RuntimeError(f"only {rows:,} of {count:,} files queued in time")
            time.sleep(0.5)
            rows, done = journal_counts(state)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        _stop(proc, signal.SIGKILL)
    rows, done = journal_counts(state)
    return Recovery(rows, done, 0.0, 0.0, time.monotonic() - started)


def first_upload_after(b: Backend, state: Path, out: Path) -> tuple[float, float]:
    """`resume --foreground`: (seconds to its first uploaded file, VmHWM MiB then)."""
    env = client_env(b.url, b.token, state)
    started = time.monotonic()
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            cli("resume", "--json", "--foreground"),
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
        )
    try:
        seen = 0
        with out.open("rb") as reader:
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"resume ended ({proc.returncode}) before an upload")
                if time.monotonic() - started > RECOVER_TIMEOUT:
                    raise RuntimeError("resume uploaded nothing in time")
                reader.seek(seen)
                chunk = reader.read()
                cut = chunk.rfind(b"\n") + 1  # whole lines only
                seen += cut
                if b'"event": "file_done"' in chunk[:cut]:
                    return time.monotonic() - started, vm_hwm(proc.pid)
                time.sleep(0.05)
    finally:
        _stop(proc)


def recovery(ctx: Context, count: int, limit: str | None = None) -> Recovery:
    ctx.work.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"bench-recover-{count}-", dir=ctx.work))
    try:
        say(f"data: {count:,} files of {TINY} B for the recovery (generated, removed after)")
        folder = make_tiny_files(tmp / "files", count)
        state = tmp / "state"
        state.mkdir(mode=0o700)
        with embedded_server(tmp / "srv") as b:
            killed = kill_when_queued(b, folder, state, count, tmp / "upload.out", limit)
            say(f"killed with {killed.rows:,} rows ({killed.done_before:,} done); resuming")
            seconds, rss = first_upload_after(b, state, tmp / "resume.out")
        killed.seconds, killed.peak_rss = seconds, rss
        return killed
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
