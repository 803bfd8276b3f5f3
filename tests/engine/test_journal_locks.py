"""A job's lock and the writes made under it, seen from another journal (issues 18, 19)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from synapse_tui.engine.events import JobState
from synapse_tui.engine.hashing import Identity
from synapse_tui.engine.journal import JobKey, Journal

HOST = "http://h"


@contextmanager
def write_lock_held(state: Path) -> Iterator[None]:
    """Another connection holds SQLite's write lock: the journal's writes wait in its queue."""
    blocker = sqlite3.connect(state / Journal.FILENAME, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        blocker.execute("COMMIT")
        blocker.close()


def test_the_lock_outlives_a_lazy_completion(tmp_path: Path) -> None:
    """A job finished (a write not yet committed) and unlocked: another journal (another
    process) cannot take its lock until the write is committed, so whoever takes it next
    reads it done and does not upload it again."""
    here, there = Journal(tmp_path), Journal(tmp_path)
    rec = here.add_job(b"/f", Identity(3, 1, 2, 3), "ab" * 16, HOST, 64)
    assert here.try_lock(rec.id)
    with write_lock_held(tmp_path):
        key = JobKey(rec.id, rec.path, rec.size, rec.fingerprint, HOST)
        here.complete(key, "md5", "upload-1", 0, {}, lazy=True)
        here.unlock(rec.id)
        assert not there.try_lock(rec.id)  # not yet: the other would read it still queued
        assert there.get(rec.id).state == JobState.QUEUED
    here.catch_up()
    assert there.try_lock(rec.id)
    assert there.get(rec.id).state == JobState.DONE
    here.close()
    there.close()


def test_a_lock_taken_again_before_the_commit_is_kept(tmp_path: Path) -> None:
    here, there = Journal(tmp_path), Journal(tmp_path)
    rec = here.add_job(b"/g", Identity(3, 1, 2, 3), "cd" * 16, HOST, 64)
    other = here.add_job(b"/h", Identity(4, 1, 2, 3), "ef" * 16, HOST, 64)
    assert here.try_lock(rec.id)
    with write_lock_held(tmp_path):
        key = JobKey(other.id, other.path, other.size, other.fingerprint, HOST)
        here.complete(key, "md5", "upload-2", 0, {}, lazy=True)  # waits in the queue
        here.unlock(rec.id)
        assert here.try_lock(rec.id)  # this process drives it again
    here.catch_up()
    assert not there.try_lock(rec.id)  # the commit did not release it
    here.unlock(rec.id)
    assert there.try_lock(rec.id)
    here.close()
    there.close()
