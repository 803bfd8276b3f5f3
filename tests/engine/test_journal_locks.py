"""A job's lock and its lazily committed completion, seen from another journal (issue 18)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from synapse_tui.engine.events import JobState
from synapse_tui.engine.hashing import Identity
from synapse_tui.engine.journal import JobKey, Journal

HOST = "http://h"


def test_the_lock_outlives_a_lazy_completion(tmp_path: Path) -> None:
    """A job finished with a lazy write and unlocked: another journal (another process)
    cannot take its lock until the completion is committed, so whoever takes it next
    reads it done and does not upload it again."""
    here, there = Journal(tmp_path), Journal(tmp_path)
    rec = here.add_job(b"/f", Identity(3, 1, 2, 3), "ab" * 16, HOST, 64)
    flushes: list[Callable[[], None]] = []
    here.defer_commits(flushes.append)  # the engine's timer, run by hand here
    assert here.try_lock(rec.id)
    key = JobKey(rec.id, rec.path, rec.size, rec.fingerprint, HOST)
    here.complete(key, "md5", "upload-1", 0, {}, lazy=True)
    here.unlock(rec.id)
    assert not there.try_lock(rec.id)  # not yet: the other would read it still queued
    assert there.get(rec.id).state == JobState.QUEUED
    [flush] = flushes
    flush()
    assert there.try_lock(rec.id)
    assert there.get(rec.id).state == JobState.DONE
    here.close()
    there.close()


def test_a_lock_taken_again_before_the_commit_is_kept(tmp_path: Path) -> None:
    here, there = Journal(tmp_path), Journal(tmp_path)
    rec = here.add_job(b"/g", Identity(3, 1, 2, 3), "cd" * 16, HOST, 64)
    other = here.add_job(b"/h", Identity(4, 1, 2, 3), "ef" * 16, HOST, 64)
    here.defer_commits(lambda flush: None)
    assert here.try_lock(rec.id)
    key = JobKey(other.id, other.path, other.size, other.fingerprint, HOST)
    here.complete(key, "md5", "upload-2", 0, {}, lazy=True)  # lazy writes wait
    here.unlock(rec.id)
    assert here.try_lock(rec.id)  # this process drives it again
    here.flush()
    assert not there.try_lock(rec.id)  # the commit did not release it
    here.unlock(rec.id)
    assert there.try_lock(rec.id)
    here.close()
    there.close()
