"""The store's group committer: many row writes to one transaction, each answered after it."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from synapse_tui.server.group_commit import GroupCommitter


def _db(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY, v INTEGER)")
    return db


def _rows(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as other:  # a connection of its own: sees only committed rows
        return dict(other.execute("SELECT k, v FROM t"))


def _insert(k: str, v: int) -> Callable[[sqlite3.Connection], int]:
    def op(db: sqlite3.Connection) -> int:
        db.execute("INSERT INTO t VALUES (?, ?)", (k, v))
        return v

    return op


def test_writes_queued_together_commit_together_and_a_failure_rolls_back_alone(
    tmp_path: Path,
) -> None:
    path = tmp_path / "db"
    synced: list[int] = []
    committer = GroupCommitter(_db(path), lambda: synced.append(1))
    started, gate = threading.Event(), threading.Event()

    def hold(_db: sqlite3.Connection) -> bool:
        started.set()
        return gate.wait(10)

    try:
        blocker = committer.submit(hold)  # holds the thread: the rest queue behind it
        assert started.wait(10)
        ok1 = committer.submit(_insert("a", 1), sync_dir=True)
        bad = committer.submit(_insert("a", 2))  # duplicate key
        ok2 = committer.submit(_insert("b", 3), sync_dir=True)
        assert not ok1.done() and _rows(path) == {}
        gate.set()
        assert blocker.result(10) is True
        assert ok1.result(10) == 1 and ok2.result(10) == 3
        with pytest.raises(sqlite3.IntegrityError):
            bad.result(10)
        assert _rows(path) == {"a": 1, "b": 3}
        # The blocker's batch, then one batch of the three queued behind it: one folder sync.
        assert committer.batches == 2
        assert synced == [1]
    finally:
        committer.close()


def test_answers_only_after_the_commit(tmp_path: Path) -> None:
    path = tmp_path / "db"
    seen: list[dict[str, int]] = []
    looked = threading.Event()

    def look(_future: object) -> None:  # runs as soon as the write is answered
        seen.append(_rows(path))
        looked.set()

    committer = GroupCommitter(_db(path), lambda: None)
    try:
        done = committer.submit(_insert("k", 7))
        done.add_done_callback(look)
        assert done.result(10) == 7
        assert looked.wait(10)
        assert seen == [{"k": 7}]
    finally:
        committer.close()


def test_close_finishes_queued_writes_then_refuses_new_ones(tmp_path: Path) -> None:
    path = tmp_path / "db"
    committer = GroupCommitter(_db(path), lambda: None)
    futures = [committer.submit(_insert(str(i), i)) for i in range(200)]
    committer.close()
    assert [f.result(0) for f in futures] == list(range(200))
    assert len(_rows(path)) == 200
    with pytest.raises(RuntimeError):
        committer.submit(_insert("late", 0))


def test_a_failed_commit_fails_every_write_in_it(tmp_path: Path) -> None:
    path = tmp_path / "db"

    def broken_sync() -> None:
        raise OSError("disk gone")

    committer = GroupCommitter(_db(path), broken_sync)
    try:
        future = committer.submit(_insert("x", 1), sync_dir=True)
        with pytest.raises(OSError, match="disk gone"):
            future.result(10)
        assert _rows(path) == {}
        assert committer.submit(_insert("y", 2)).result(10) == 2  # the thread goes on
    finally:
        committer.close()
