"""The journal's writer thread outlives a waiter whose event loop is gone.

A coroutine that awaited a write and was cancelled (a timeout, Ctrl-C) leaves its waiter
behind; if its loop is closed before the write commits, waking it raises. The writer's
thread must go on committing what is queued after, and `close` must commit it all.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path

from synapse_tui.engine.errors import JournalFailed
from synapse_tui.engine.journal import Journal
from synapse_tui.engine.journal_writer import Unit
from tests.harness.lock_holder import LockHolder


def _insert(note: str) -> Unit:
    return lambda db: db.execute("INSERT INTO job_errors VALUES (0, 0, ?)", (note,))


def test_writes_after_a_closed_loops_waiter_are_committed(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    with LockHolder(str(journal.path)) as holder:

        async def wait_briefly() -> None:
            journal.write(_insert("first"))
            with contextlib.suppress(TimeoutError):  # the writer waits for the lock
                await asyncio.wait_for(journal.settled(), 0.2)

        asyncio.run(wait_briefly())  # its loop is closed now, its waiter still queued
        journal.write(_insert("second"))
        holder.release()
    journal.close()
    db = sqlite3.connect(f"file:{journal.path}?mode=ro", uri=True)
    try:
        notes = sorted(r[0] for r in db.execute("SELECT message FROM job_errors"))
    finally:
        db.close()
    assert notes == ["first", "second"]


def test_a_writer_that_dies_outside_a_unit_fails_its_waiters_instead_of_hanging(
    tmp_path: Path,
) -> None:
    """An error outside any unit (here `on_commit`, after the first write's commit; a
    ROLLBACK that raises is another) ended the writer's thread without a word: the next
    write's waiter waited for ever. Now the journal is broken and says why."""
    journal = Journal(tmp_path)
    writer = journal._writer

    def boom() -> None:
        raise OSError("the disk went away")

    writer._on_commit = boom

    async def write_and_wait(note: str) -> None:
        journal.write(_insert(note))
        await asyncio.wait_for(journal.settled(), 10)

    # Committed; then `on_commit` raised: the waiter sees either (a race it may lose).
    with contextlib.suppress(JournalFailed):
        asyncio.run(write_and_wait("first"))
    writer._thread.join(10)
    assert not writer._thread.is_alive()
    try:
        asyncio.run(write_and_wait("second"))
    except TimeoutError:
        raise AssertionError("a write to a dead writer waited for ever") from None
    except Exception as exc:
        assert "the disk went away" in str(exc), exc
    else:
        raise AssertionError("a write to a dead writer was taken as committed")
    with contextlib.suppress(Exception):
        journal.close()
