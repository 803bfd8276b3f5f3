"""A delete of many TEMP rows (a scan's duplicate index at its end, a batch's routing rows)
holds SQLite memory that does not grow with the rows. The TEMP schema journals in memory,
and a rollback journal in memory keeps the old content of every page a statement changes:
the end of a scan of 1,000,000 files held ~125 bytes per file at once, the peak after the
last upload that made the million-file run 2.5x its 100,000-file run.

Measured with SQLite's own allocation counters (`sqlite3_memory_highwater`, which the
library keeps for the whole process), not RSS: exact, and untouched by the machine's load."""

from __future__ import annotations

import ctypes
import functools
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from synapse_tui.engine.events import JobState
from synapse_tui.engine.journal import Journal
from synapse_tui.engine.session import Session, delete_rows
from synapse_tui.service.batch_jobs import BatchJobs, Member

SMALL, BIG = 3_000, 30_000  # rows: the old journal held ~0.4 and ~3.7 MiB at once
SLACK = 256 << 10  # bytes: a file journal's buffer (64 KiB) and statement caches


class SqliteMemory:
    """The process's SQLite allocation counters, from the library Python's module uses."""

    def __init__(self) -> None:
        import _sqlite3

        try:
            lib = ctypes.CDLL(_sqlite3.__file__)  # its own symbols and its libsqlite3's
            self._used = lib.sqlite3_memory_used
            self._highwater = lib.sqlite3_memory_highwater
        except (OSError, AttributeError) as exc:
            pytest.skip(f"SQLite's memory counters are not reachable through ctypes: {exc}")
        self._used.restype = ctypes.c_int64
        self._highwater.restype = ctypes.c_int64
        self._highwater.argtypes = [ctypes.c_int]
        probe = sqlite3.connect(":memory:")  # the library holds memory once in use
        enabled = self._used() > 0
        probe.close()
        if not enabled:
            pytest.skip("this SQLite keeps no memory statistics (SQLITE_DEFAULT_MEMSTATUS=0)")

    def peak_of(self, action: Callable[[], None]) -> int:
        """Bytes SQLite held at most during `action`, above what it held before."""
        before = self._used()
        self._highwater(1)  # the high-water mark restarts from what is in use now
        action()
        return int(self._highwater(0)) - before


@pytest.fixture
def memory() -> SqliteMemory:
    return SqliteMemory()


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    j = Journal(tmp_path)
    try:
        yield j
    finally:
        j.close()


def _seen_rows(session: Session, scan: int, count: int) -> None:
    for start in range(0, count, 1000):
        stop = min(count, start + 1000)
        session.note_seen(
            scan,
            {(64, f"{i:064x}"): f"/data/d{i // 1000:04d}/f{i:07d}.bin" for i in range(start, stop)},
        )


def _temp_mode(journal: Journal) -> str:
    (mode,) = journal.connection.execute("PRAGMA temp.journal_mode").fetchone()
    return str(mode).lower()


def test_a_scans_end_holds_memory_that_does_not_grow_with_its_files(
    journal: Journal, memory: SqliteMemory
) -> None:
    session = Session(journal)
    peaks: dict[int, int] = {}
    for count in (SMALL, BIG):
        scan = session.new_scan()
        _seen_rows(session, scan, count)
        assert len(session.seen(scan, [(64, f"{count - 1:064x}")])) == 1
        peaks[count] = memory.peak_of(functools.partial(session.end_scan, scan))
        assert session.seen(scan, [(64, f"{i:064x}") for i in range(0, count, 97)]) == {}
    # The old end held ~125 bytes per row at once: 3.7 MiB at BIG against 0.4 at SMALL.
    assert peaks[BIG] <= peaks[SMALL] + SLACK, peaks
    # and the TEMP schema still journals in memory for every other statement
    assert _temp_mode(journal) == "memory"


def test_a_batchs_drop_holds_memory_that_does_not_grow_with_its_jobs(
    journal: Journal, memory: SqliteMemory
) -> None:
    Session(journal)  # the engine's TEMP schema, journal in memory
    members = BatchJobs(journal.connection)
    peaks: dict[int, int] = {}
    for batch, count in ((1, SMALL), (2, BIG)):
        base = batch * 1_000_000
        for job in range(base, base + count):
            members.put(job, Member(batch, JobState.QUEUED, 64, 0))
        peaks[count] = memory.peak_of(functools.partial(members.drop, batch))
    assert members.count() == 0
    assert peaks[BIG] <= peaks[SMALL] + SLACK, peaks
    assert _temp_mode(journal) == "memory"


def test_a_delete_inside_a_transaction_still_deletes(journal: Journal) -> None:
    """SQLite keeps the journal mode inside a write transaction: the rows go all the same,
    and the mode is memory after it."""
    session = Session(journal)
    scan = session.new_scan()
    db: sqlite3.Connection = journal.connection
    db.execute("BEGIN")
    _seen_rows(session, scan, 10)
    delete_rows(db, "DELETE FROM temp.scan_seen WHERE scan = ?", (scan,))
    db.execute("COMMIT")
    assert session.seen(scan, [(64, f"{i:064x}") for i in range(10)]) == {}
    assert _temp_mode(journal) == "memory"
