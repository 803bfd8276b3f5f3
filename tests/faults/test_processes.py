"""Issue 18's process rows: resume elsewhere, two uploads, a fatal stop, many scans."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from pathlib import Path

import pytest

from synapse_tui.engine.events import Event, FatalStop, JobState
from synapse_tui.engine.hashing import Identity, io_executor
from synapse_tui.engine.journal import Journal
from synapse_tui.engine.scan import FoundFile, scan
from tests.faults.crash import Cli, journal_rows, wait_for
from tests.faults.helpers import (
    CHUNK,
    TimedProxy,
    assert_stored_once,
    make_file,
    make_manager,
    via,
)
from tests.faults.test_crash import SIZE, UPLOAD, answered, puts, recording_proxy
from tests.harness.drf import DrfServer
from tests.harness.embedded import EmbeddedServer
from tests.harness.proxy import Fault, Rule

ACTIVE = {"hashing", "uploading", "finalizing", "registering"}


# -- 1. resume from another folder ---------------------------------------------------------


def test_ctrl_c_then_resume_from_another_folder(drf: DrfServer, tmp_path: Path) -> None:
    """`upload NAME` in folder A, Ctrl-C after two chunks, `resume` in folder B: the
    journal holds the absolute path, so the resume continues the same upload from the
    server's offset (PUT 3 may have landed before its answer was lost), nothing re-sent
    from byte 0, and the server holds the file once."""
    here, there = tmp_path / "a", tmp_path / "b"
    here.mkdir()
    there.mkdir()
    f = make_file(here / "relative-then-elsewhere.bin", SIZE)
    with recording_proxy(drf.port) as tp:
        tp.add_rule(Rule(Fault("stall", seconds=0), method="PUT", nth=3))
        cli = Cli(tp.url + "/api", drf.token, tmp_path / "state", cwd=here)
        run = cli.start("upload", f.name, *UPLOAD)
        try:
            wait_for(lambda: answered(tp, "PUT", 2) and len(puts(tp)) >= 3, 30, "PUT 3")
            run.interrupt()
            stopped = run.collect(timeout=30)
        finally:
            run.ensure_dead()
        assert stopped.returncode == 130, stopped.stderr
        [row] = journal_rows(tmp_path / "state")
        assert bytes(row["path"]) == os.fsencode(f)  # absolute, though given relative
        assert (row["state"], row["offset"]) == ("paused", 2 * CHUNK)
        tp.clear_rules()
        resumed = Cli(tp.url + "/api", drf.token, tmp_path / "state", cwd=there)
        result = resumed.run("resume", "--json")
    assert result.returncode == 0, (result.stdout, result.stderr)
    [done] = result.of("file_done")
    assert done["path"] == str(f)
    assert done["resumed_from"] in (2 * CHUNK, 3 * CHUNK)  # the server's offset, not 0
    assert_stored_once(drf, f, upload_id=done["upload_id"])


def test_an_older_journal_with_a_relative_path(drf: DrfServer, tmp_path: Path) -> None:
    """A job an older synapse-tui journaled with a relative path: `resume` from a folder
    where that file is not leaves it resumable (exit 1, one line saying where to run it),
    never failed; from its own folder it is made absolute and finishes."""
    here, there = tmp_path / "a", tmp_path / "b"
    here.mkdir()
    there.mkdir()
    f = make_file(here / "older-relative.bin", 2 * CHUNK + 7)
    state = tmp_path / "state"
    journal = Journal(state)
    from synapse_tui.engine.scan import xxh3_file

    digest, _ = xxh3_file(bytes(f))
    rec = journal.add_job(b"older-relative.bin", Identity.of(f.stat()), digest, drf.url, CHUNK)
    journal.close()

    elsewhere = Cli(drf.url, drf.token, state, cwd=there).run("resume", "--json")
    assert elsewhere.returncode == 1, elsewhere.stderr
    [left] = elsewhere.of("file_failed")
    assert left["resumable"] and "run `synapse-tui resume` in the folder" in left["error"]
    [row] = journal_rows(state)
    assert (row["state"], bytes(row["path"])) == ("queued", b"older-relative.bin")

    home = Cli(drf.url, drf.token, state, cwd=here).run("resume", "--json")
    assert home.returncode == 0, home.stderr
    [done] = home.of("file_done")
    assert done["path"] == str(f)
    [row] = journal_rows(state)
    assert (row["id"], row["state"], bytes(row["path"])) == (rec.id, "done", bytes(f))
    assert_stored_once(drf, f)


# -- 2. two uploads on one journal ---------------------------------------------------------


def _uploads_by_name(server: EmbeddedServer) -> dict[str, list[tuple[str, int]]]:
    """Every upload the server has (complete or not), by file name: (id, status)."""
    db = sqlite3.connect(f"file:{server.root / 'uploads.sqlite3'}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT filename, id, status FROM uploads").fetchall()
    finally:
        db.close()
    out: dict[str, list[tuple[str, int]]] = {}
    for name, upload_id, status in rows:
        out.setdefault(name, []).append((upload_id, status))
    return out


@pytest.mark.parametrize("apart", [False, True], ids=["together", "second-mid-run"])
def test_two_uploads_of_the_same_files_upload_each_once(
    embedded_server: EmbeddedServer, tmp_path: Path, apart: bool
) -> None:
    """Two `upload` processes on one state folder and the same 150 files (small ones and
        a few of several chunks), started together, or the second once the first (slowed down)
    has finished some:
        the server gets exactly one upload per file; every file is accounted for in each run
        (uploaded, already uploaded, or left to the other process); a run that left files to
        the other one says so and exits 1, one that did not exits 0."""
    folder = tmp_path / "files"
    folder.mkdir()
    files = [make_file(folder / f"small-{i:03}.bin", 1000 + 37 * i, seed=i) for i in range(144)]
    files += [make_file(folder / f"big-{i}.bin", 3 * CHUNK + i, seed=1000 + i) for i in range(6)]
    cli = Cli(embedded_server.url, embedded_server.token, tmp_path / "state")
    args = ("upload", str(folder), "--json", "--chunk-size", "64K", "-j", "4")
    # Apart: the first is slowed (bandwidth limit) so the second comes while it runs.
    first = cli.start(*args, *(("--bwlimit", "300K") if apart else ()))
    try:
        if apart:
            wait_for(
                lambda: sum(r["state"] == "done" for r in journal_rows(cli.state_dir)) >= 10,
                60,
                "the first process to finish 10 files",
            )
        second = cli.start(*args)
        try:
            results = [first.collect(timeout=120), second.collect(timeout=120)]
        finally:
            second.ensure_dead()
    finally:
        first.ensure_dead()

    uploads = _uploads_by_name(embedded_server)
    twice = {name: u for name, u in uploads.items() if len(u) != 1}
    assert twice == {}, f"{len(twice)} files uploaded more than once: {sorted(twice)[:5]}"
    assert sorted(uploads) == sorted(f.name for f in files)
    for f in files:
        [(upload_id, status)] = uploads[f.name]
        assert status == 2, f
        assert embedded_server.backend.store.path_for(upload_id).read_bytes() == f.read_bytes()
    uploaded = 0
    for result in results:
        s = result.summary
        assert s["failed"] == 0 and s["resumable"] == 0, result.stderr
        assert s["uploaded"] + s["skipped"] + s["elsewhere"] == len(files), s
        assert len(result.of("file_elsewhere")) == s["elsewhere"]
        assert result.returncode == (1 if s["elsewhere"] else 0), (s, result.stderr)
        uploaded += s["uploaded"]
    assert uploaded == len(files)


# -- 3. a fatal stop while jobs run --------------------------------------------------------


async def test_fatal_stop_leaves_no_job_running(
    drf: DrfServer, proxy: TimedProxy, tmp_path: Path
) -> None:
    """A 401 on the 3rd PUT while two jobs upload: once the engine is idle (before it is
    closed), every job is paused with "stopped: ..." in memory and in the journal; none is
    left "uploading" (the dashboard keeps such an engine open)."""
    files = [make_file(tmp_path / f"fatal-{i}.bin", 4 * CHUNK, seed=i) for i in range(3)]
    proxy.add_rule(Rule(Fault("status", status=401, body=b"{}"), method="PUT", nth=3))
    events: list[Event] = []
    state = tmp_path / "state"
    m = make_manager(via(proxy), drf.token, state, events, concurrency=2)
    try:
        async with asyncio.timeout(30):
            m.start()
            await m.add_paths([os.fsencode(f) for f in files])
            await m.wait_idle()
            assert [type(e) for e in events if isinstance(e, FatalStop)] == [FatalStop]
            assert {j.state for j in m.jobs.values()} == {JobState.PAUSED}, m.jobs
            assert all((j.last_error or "").startswith("stopped: ") for j in m.jobs.values())
            # The rows as the writer commits them: idle says nothing runs, not that every
            # write queued before it is committed (a job's pause may be a few ms behind).
            await m.journal.settled()
            rows = journal_rows(state)
            assert [r["state"] for r in rows] == ["paused"] * 3, rows
            assert all(r["last_error"].startswith("stopped: ") for r in rows), rows
    finally:
        await m.close()
        m.journal.close()


# -- 4. many scans at once -----------------------------------------------------------------


async def test_as_many_scans_as_pool_threads_do_not_freeze(tmp_path: Path) -> None:
    """As many concurrent scans as the shared pool has threads, each walking more batches
    than its queue holds: the walkers must not take the threads the hashing needs (they
    did, and every scan waited forever)."""
    workers = io_executor()._max_workers
    parallel = max(2, os.cpu_count() or 2)
    per_folder = 3 * parallel + 4  # more one-file batches than a scan's queue holds
    folders = []
    for n in range(workers):
        folder = tmp_path / f"folder-{n}"
        folder.mkdir()
        for i in range(per_folder):
            (folder / f"{i}.bin").write_bytes(os.urandom(64))
        folders.append(folder)

    async def one(folder: Path) -> int:
        found = 0
        async for batch in scan([os.fsencode(folder)], batch_files=1):
            found += sum(isinstance(item, FoundFile) for item in batch)
        return found

    async with asyncio.timeout(30):
        counts = await asyncio.gather(*(one(f) for f in folders))
    assert counts == [per_folder] * workers
