"""The engine's small parts: units, names, meter, limits, journal files and locks, scan."""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from synapse_tui.engine.errors import JournalFailed
from synapse_tui.engine.hashing import Identity
from synapse_tui.engine.journal import Journal
from synapse_tui.engine.limits import Backoff, Bandwidth, Gate
from synapse_tui.engine.meter import Meter
from synapse_tui.engine.names import display_path, escape_text, upload_filename
from synapse_tui.engine.scan import FoundFile, Refused, scan, walk
from synapse_tui.engine.steps import JobSteps, UnitPlan
from synapse_tui.units import format_duration, format_size, parse_duration, parse_rate, parse_size


def test_sizes_rates_and_durations() -> None:
    assert parse_size("50M") == 50 * 1024**2
    assert parse_size("1.5G") == int(1.5 * 1024**3)
    assert parse_size("512KiB") == 512 * 1024 and parse_size("7") == 7
    assert parse_rate("20M") == 20 * 1024**2 and parse_rate("0") is None
    assert parse_rate("off") is None
    assert parse_duration("15m") == 900 and parse_duration("2h") == 7200
    for bad in ("", "fast", "-1M", "3X"):
        with pytest.raises(ValueError):
            parse_size(bad)
    assert format_size(1536) == "1.5 KiB" and format_size(10) == "10 B"
    assert format_duration(3725) == "1h02m" and format_duration(None) == "--"


def test_names_are_escaped_for_terminals() -> None:
    raw = b"bad\xff\x1b[31mred\r\nname\x7f.bin"
    shown = display_path(raw)
    assert shown == "bad\\xff\\e[31mred\\r\\nname\\x7f.bin"
    assert all(ch.isprintable() for ch in shown)
    assert escape_text("tab\there\u0085") == "tab\\there\\x85"
    long = b"x" * 300 + b".tar.gz"
    name = upload_filename(long)
    assert len(name) <= 255 and name.endswith(".gz")


def test_meter_rate_is_the_slope_and_the_eta_does_not_jump() -> None:
    now = [0.0]
    meter = Meter(window=10, clock=lambda: now[0])
    assert meter.rate() == 0.0 and meter.eta(100) is None
    etas = []
    for _ in range(20):  # 10 MB/s in bursts of 5 MB every half second
        now[0] += 0.5
        meter.add(5_000_000)
        etas.append(meter.eta(100_000_000))
    assert meter.rate() == pytest.approx(10_000_000, rel=0.1)
    now[0] += 0.5
    meter.add(30_000_000)  # one burst
    spiked = meter.eta(100_000_000)
    assert etas[-1] is not None and spiked is not None
    assert abs(spiked - etas[-1]) < 0.2 * etas[-1]  # smoothed, no jump
    assert meter.eta(0) == 0.0


async def test_bandwidth_bucket_delays_by_the_deficit_and_changes_live() -> None:
    now = [100.0]
    bw = Bandwidth(1000.0, clock=lambda: now[0])
    assert bw.delay_for(250) == 0.0  # the quarter-second burst allowance
    assert bw.delay_for(1000) == pytest.approx(1.0)
    bw.set_rate(None)
    assert bw.delay_for(10**9) == 0.0
    bw.set_rate(2000.0)
    assert bw.rate == 2000.0 and bw.delay_for(4000) == pytest.approx(1.75)  # 500 B of burst
    # A waiter wakes when the rate is raised instead of sleeping out its old delay.
    slow = Bandwidth(1.0)
    waiter = asyncio.ensure_future(slow.acquire(10_000))
    await asyncio.sleep(0)
    slow.set_rate(None)
    await asyncio.wait_for(waiter, timeout=5)


async def test_gate_capacity_changes_while_held() -> None:
    gate = Gate(2)
    assert gate.take() and gate.take() and not gate.take()
    await gate.set_capacity(3)
    assert gate.take() and gate.held == 3
    await gate.set_capacity(1)
    assert not gate.free()
    for _ in range(3):
        await gate.release()
    assert gate.free() and gate.held == 0


def test_backoff_full_jitter_cap_and_shared_wait() -> None:
    now = [0.0]
    picks: list[tuple[float, float]] = []

    def rand(a: float, b: float) -> float:
        picks.append((a, b))
        return b

    backoff = Backoff(base=1.0, cap=8.0, rand=rand, clock=lambda: now[0])
    assert [backoff.delay(n) for n in (1, 2, 3, 4, 10)] == [1.0, 2.0, 4.0, 8.0, 8.0]
    assert all(a == 0.0 for a, _ in picks)  # full jitter: from zero
    assert backoff.delay(1, retry_after=30.0) == 30.0
    assert backoff.shared_wait() == 30.0  # every worker now waits
    now[0] = 25.0
    assert backoff.shared_wait() == 5.0


def test_journal_is_private_and_survives_reopen(tmp_path: Path) -> None:
    state = tmp_path / "state"
    journal = Journal(state)
    job = journal.add_job(b"/x/\xff.bin", Identity(10, 1, 2, 3), "fp", "http://h", 5)
    journal.update(job.id, offset=5, upload_url="http://h/u/1/")
    journal.close()
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    for f in state.glob("journal.sqlite3*"):
        assert stat.S_IMODE(f.stat().st_mode) == 0o600
    again = Journal(state).get(job.id)
    assert again.path == b"/x/\xff.bin" and again.offset == 5
    with pytest.raises(ValueError):
        Journal(state).update(job.id, path=b"/etc/passwd")


@pytest.mark.parametrize("steps", [None, JobSteps(UnitPlan(7, "image", "/d/a", {"k": "v"}))])
def test_journal_add_job_returns_the_row_as_stored(tmp_path: Path, steps: JobSteps | None) -> None:
    journal = Journal(tmp_path)
    job = journal.add_job(b"/d/a.bin", Identity(10, 11, 12, 13), "fp", "http://h", 5, 2, steps)
    assert job == journal.get(job.id)


def test_journal_writes_are_atomic_units_and_a_failed_one_stops_the_journal(
    tmp_path: Path,
) -> None:
    journal = Journal(tmp_path)
    other = Journal(tmp_path)  # another connection: sees only what is committed
    ident = Identity(10, 1, 2, 3)
    a = journal.add_job(b"/a", ident, "fa", "http://h", 5)
    with pytest.raises(ValueError):  # refused before it is queued
        journal.update(a.id, path=b"/etc/passwd")
    journal.update(a.id, offset=3)

    def half(db: sqlite3.Connection) -> None:
        db.execute("UPDATE jobs SET offset = 4 WHERE id = ?", (a.id,))
        db.execute("INSERT INTO jobs (id) VALUES (?)", (a.id,))  # fails: undone whole

    journal.write(half)
    # Said, as one JournalFailed, where the engine waits for its writes (which stops it);
    # reads see what was committed, and later writes are dropped.
    with pytest.raises(JournalFailed) as failed:
        asyncio.run(journal.settled())
    assert isinstance(failed.value.__cause__, sqlite3.IntegrityError)
    journal.catch_up()
    journal.update(a.id, offset=5)
    with pytest.raises(JournalFailed):
        asyncio.run(journal.durable())
    assert other.get(a.id).offset == 3  # the write before it was committed, none of it
    assert journal.get(a.id).offset == 3  # nor any after it


async def test_a_request_waits_for_the_writes_before_it_but_not_for_a_finished_note(
    tmp_path: Path,
) -> None:
    """`durable` (what the engine's clients await before a request) waits for every write
    queued before it except a finished upload's note; SQLite's wait for the write lock
    held by another connection happens on the writer's thread, not on this loop."""
    journal = Journal(tmp_path)
    ident = Identity(10, 1, 2, 3)
    a, b = (journal.add_job(p, ident, f"f{p!r}", "http://h", 5) for p in (b"/a", b"/b"))
    blocker = sqlite3.connect(tmp_path / Journal.FILENAME, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another process's write lock, held
    try:
        journal.complete(a, "m" * 32, "u1", 0, {}, lazy=True)
        await asyncio.wait_for(journal.durable(), 5)  # nothing it must wait for
        assert not journal.caught_up()
        journal.update(b.id, creating_since=1.0)
        waiting = asyncio.create_task(journal.durable())
        settled = asyncio.create_task(journal.settled())
        await asyncio.sleep(0.2)  # the loop runs on while the lock is held
        assert not waiting.done() and not settled.done()
    finally:
        blocker.execute("COMMIT")
        blocker.close()
    await asyncio.wait_for(asyncio.gather(waiting, settled), 30)
    other = Journal(tmp_path)
    assert other.get(a.id).state.value == "done" and other.get(b.id).creating_since == 1.0
    assert other.uploaded("http://h", a.fingerprint, 10) is not None
    journal.close()
    other.close()


def test_journal_checkpoints_on_its_own_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Journal, "CHECKPOINT_EVERY", 5)
    journal = Journal(tmp_path)
    assert journal._db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 16384
    database = tmp_path / Journal.FILENAME
    empty = database.stat().st_size
    job = journal.add_job(b"/a", Identity(10, 1, 2, 3), "fa", "http://h", 5)
    for offset in range(3):
        journal.update(job.id, offset=offset)
        journal.catch_up()  # one commit each (the writer would take them in one)
    assert not journal._checkpointer.ran.is_set()  # 4 commits: the WAL holds them all
    assert database.stat().st_size == empty
    journal.update(job.id, offset=4)  # the 5th commit pokes the thread
    journal.catch_up()
    assert journal._checkpointer.ran.wait(30)
    assert database.stat().st_size > empty  # the pages went from the WAL to the database
    journal.close()
    assert Journal(tmp_path).get(job.id).offset == 4


def test_journal_tells_which_fingerprints_need_a_lookup(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    ident = Identity(10, 1, 2, 3)
    queued = journal.add_job(b"/q", ident, "fq", "http://h", 5)
    done = journal.add_job(b"/d", ident, "fd", "http://h", 5)
    journal.complete(done, "m" * 32, "u1", 0, {})  # in the ledger, no longer unfinished
    journal.add_job(b"/o", ident, "fo", "http://other", 5)  # another backend's
    asked = ["fq", "fd", "fo", "fnew", "fq"]
    assert journal.known_fingerprints("http://h", asked) == {"fq", "fd"}
    assert journal.known_fingerprints("http://other", asked) == {"fo"}
    assert journal.known_fingerprints("http://h", []) == set()
    journal.update(queued.id, state="failed")
    assert journal.known_fingerprints("http://h", asked) == {"fd"}


def test_job_lock_is_held_against_another_process(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    assert journal.try_lock(7)
    code = (
        "import sys; from pathlib import Path; from synapse_tui.engine.journal import Journal\n"
        f"j = Journal(Path({str(tmp_path)!r}))\n"
        "print(j.try_lock(7), j.try_lock(8))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]
    journal.unlock(7)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split()[0] == "True"


def test_job_lock_conflicts_within_the_process_and_survives_other_opens(tmp_path: Path) -> None:
    journal, other = Journal(tmp_path), Journal(tmp_path)
    assert journal.try_lock(3) and journal.try_lock(3)  # re-entrant for its holder
    assert not other.try_lock(3)  # another Journal, even in this process
    assert other.try_lock(4) and not journal.try_lock(4)
    for path in tmp_path.rglob("*.lock"):  # POSIX record locks would all go on this close
        os.close(os.open(path, os.O_RDONLY))
    assert not other.try_lock(3)
    journal.unlock(3)
    assert other.try_lock(3)
    other.close()  # closing releases every lock it held
    assert journal.try_lock(3) and journal.try_lock(4)
    if sys.platform == "linux":  # one lock file, not one per job
        assert [p.name for p in tmp_path.rglob("*.lock")] == ["jobs.lock"]


def test_job_locks_fall_back_to_a_file_per_job_without_ofd_locks(tmp_path: Path) -> None:
    import fcntl

    def no_ofd(fd: int, cmd: int, arg: bytes) -> object:
        if cmd == getattr(fcntl, "F_OFD_SETLK", None):
            raise OSError(errno.EINVAL, "Invalid argument")  # as an old kernel answers
        return fcntl.fcntl(fd, cmd, arg)

    # The journal's own seam: fcntl stays the real one for every other thread.
    journal, other = Journal(tmp_path, fcntl_call=no_ofd), Journal(tmp_path, fcntl_call=no_ofd)
    assert journal.try_lock(5) and not other.try_lock(5)
    journal.unlock(5)
    assert other.try_lock(5)
    assert (tmp_path / "locks" / "5.lock").exists()


def test_walk_refuses_loops_links_and_special_files(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "f.txt").write_text("x")
    os.symlink(root, root / "sub" / "loop")
    os.symlink(tmp_path / "nowhere", root / "dangling")
    os.mkfifo(root / "fifo")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(root / "sock"))
    try:
        items = list(walk([bytes(root)]))
    finally:
        sock.close()
    files = [p for p in items if isinstance(p, tuple)]
    refused = {os.path.basename(r.path): r for r in items if isinstance(r, Refused)}
    assert [os.path.basename(p) for p, _ in files] == [b"f.txt"]
    assert "loop" in refused[b"loop"].reason and not refused[b"loop"].error
    assert refused[b"dangling"].reason == "dangling symbolic link"
    assert "FIFO" in refused[b"fifo"].reason and "socket" in refused[b"sock"].reason
    # Named on the command line, the same entries are errors, not notices.
    named = list(walk([bytes(root / "fifo"), b"/dev/zero", b"/proc/self/status"]))
    assert all(isinstance(r, Refused) and r.error for r in named)


def test_links_inside_a_folder_are_still_resolved_before_the_kernel_check(
    tmp_path: Path,
) -> None:
    # Entries that are no links skip resolving their path; links must not.
    (tmp_path / "plain").write_text("x")
    os.symlink("/proc/self/status", tmp_path / "to-proc")
    items = list(walk([bytes(tmp_path)]))
    refused = {os.path.basename(r.path): r for r in items if isinstance(r, Refused)}
    assert "kernel filesystem" in refused[b"to-proc"].reason
    assert [os.path.basename(i[0]) for i in items if isinstance(i, tuple)] == [b"plain"]


def test_open_regular_with_an_identity_checks_fully_when_it_does_not_match(
    tmp_path: Path,
) -> None:
    from synapse_tui.engine.errors import FileChangedError, LocalFileError
    from synapse_tui.engine.hashing import open_regular

    f = tmp_path / "f"
    f.write_bytes(b"abc")
    ident = Identity.of(f.stat())
    fd, got = open_regular(bytes(f), ident)
    os.close(fd)
    assert got == ident
    os.symlink("/proc/self/status", tmp_path / "to-proc")
    with pytest.raises(LocalFileError, match="kernel filesystem"):
        open_regular(bytes(tmp_path / "to-proc"), ident)  # not the file that was scanned
    f.write_bytes(b"abcd")
    with pytest.raises(FileChangedError, match="changed since it was scanned"):
        open_regular(bytes(f), ident)


async def test_scan_hashes_in_batches_in_walk_order(tmp_path: Path) -> None:
    for i in range(30):
        (tmp_path / f"f{i:02}").write_bytes(os.urandom(100 + i))
    batches = [b async for b in scan([bytes(tmp_path)], batch_files=7)]
    assert len(batches) == 5
    found = [f for b in batches for f in b if isinstance(f, FoundFile)]
    assert [os.path.basename(f.path) for f in found] == [f"f{i:02}".encode() for i in range(30)]
    import xxhash

    assert found[3].fingerprint == xxhash.xxh3_128((tmp_path / "f03").read_bytes()).hexdigest()
