"""A journal that runs out of room (SQLITE_FULL) says so, and keeps the order of writes.

SQLite rolls back the whole transaction on SQLITE_FULL: the writer's group of units is
gone, not just the failing unit's savepoint. The error a caller sees must be the full
disk (not "no such savepoint"), and no unit queued after the failed one may be committed
on its own while the units before it were undone.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from synapse_tui.engine.errors import JournalFailed
from synapse_tui.engine.journal import Journal
from synapse_tui.engine.journal_writer import Unit
from tests.harness.lock_holder import LockHolder


def _note(message: str) -> Unit:
    return lambda db: db.execute("INSERT INTO job_errors VALUES (0, 0, ?)", (message,))


def _cap(db: sqlite3.Connection) -> None:
    """No page beyond the file's current size: the next growth is SQLITE_FULL."""
    (pages,) = db.execute("PRAGMA page_count").fetchone()
    db.execute(f"PRAGMA max_page_count = {pages}")


def test_a_full_journal_reports_the_full_disk_and_commits_nothing_after(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.call(_cap)
    with LockHolder(str(journal.path)) as holder:
        journal.write(_note("first"))  # taken alone by the writer, which waits for the lock
        # Queued meanwhile: one group, one transaction, once the lock is free.
        journal.write(_note("before"))
        journal.write(_note("x" * 400_000))  # needs pages the journal may not have
        journal.write(_note("after"))
        holder.release()
    with pytest.raises(JournalFailed) as caught:
        asyncio.run(journal.settled())
    assert "full" in str(caught.value)
    journal.close()
    db = sqlite3.connect(f"file:{journal.path}?mode=ro", uri=True)
    try:
        notes = [r[0] for r in db.execute("SELECT message FROM job_errors ORDER BY rowid")]
    finally:
        db.close()
    assert "after" not in notes  # nothing after a failed write is made
