"""The group committer's statements: a batch without failures runs no savepoints."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from synapse_tui.server.group_commit import GroupCommitter


def _traced_db(path: Path, statements: list[str]) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER)")
    db.set_trace_callback(statements.append)
    return db


def _insert(k: str, v: int) -> Callable[[sqlite3.Connection], int]:
    def op(db: sqlite3.Connection) -> int:
        db.execute("INSERT INTO t VALUES (?, ?)", (k, v))
        return v

    return op


def _queued_batch(committer: GroupCommitter, keys: list[str]) -> list[Future[Any]]:
    """Queue a write per key behind one that holds the thread, so they commit as one batch."""
    started, gate = threading.Event(), threading.Event()

    def hold(_db: sqlite3.Connection) -> bool:
        started.set()
        return gate.wait(10)

    blocker = committer.submit(hold)
    assert started.wait(10)
    futures = [committer.submit(_insert(k, i)) for i, k in enumerate(keys)]
    gate.set()
    assert blocker.result(10) is True
    return futures


def test_a_batch_that_succeeds_is_its_writes_between_begin_and_commit(tmp_path: Path) -> None:
    statements: list[str] = []
    committer = GroupCommitter(_traced_db(tmp_path / "db", statements), lambda: None)
    try:
        futures = _queued_batch(committer, ["a", "b", "c"])
        assert [f.result(10) for f in futures] == [0, 1, 2]
    finally:
        committer.close()
    assert committer.batches == 2
    last = statements[statements.index("BEGIN IMMEDIATE", 1) :]
    assert [s.split()[0] for s in last] == ["BEGIN", "INSERT", "INSERT", "INSERT", "COMMIT"]
    assert not any("SAVEPOINT" in s for s in statements)


def test_a_failing_write_is_retried_in_savepoints_and_the_rest_land_once(tmp_path: Path) -> None:
    statements: list[str] = []
    path = tmp_path / "db"
    committer = GroupCommitter(_traced_db(path, statements), lambda: None)
    try:
        futures = _queued_batch(committer, ["a", "a", "b"])  # the second one is a duplicate
        assert futures[0].result(10) == 0
        with pytest.raises(sqlite3.IntegrityError):
            futures[1].result(10)
        assert futures[2].result(10) == 2
    finally:
        committer.close()
    with sqlite3.connect(path) as other:
        assert dict(other.execute("SELECT k, v FROM t")) == {"a": 0, "b": 2}
    assert committer.batches == 2  # the failed attempt was rolled back, not committed
    assert statements.count("ROLLBACK") == 1 and statements.count("ROLLBACK TO one_write") == 1


async def test_writes_from_the_loop_are_answered_there_in_one_callback_per_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    loop = asyncio.get_running_loop()
    wakeups: list[object] = []
    real = loop.call_soon_threadsafe

    def counting(callback: Any, *args: Any, **kwargs: Any) -> Any:
        wakeups.append(callback)
        return real(callback, *args, **kwargs)

    monkeypatch.setattr(loop, "call_soon_threadsafe", counting)
    path = tmp_path / "db"
    committer = GroupCommitter(_traced_db(path, []), lambda: None)
    started, gate = threading.Event(), threading.Event()

    def hold(_db: sqlite3.Connection) -> bool:
        started.set()
        return gate.wait(10)

    try:
        blocker = committer.submit(hold)
        assert await asyncio.to_thread(started.wait, 10)
        wakeups.clear()  # to_thread's own answer
        answers = [
            committer.submit_on_loop(_insert("a", 1)),
            committer.submit_on_loop(_insert("a", 2)),  # a duplicate: fails alone
            committer.submit_on_loop(_insert("b", 3)),
        ]
        assert not any(a.done() for a in answers)
        gate.set()
        assert await asyncio.wait_for(answers[0], 10) == 1
        assert await asyncio.wait_for(answers[2], 10) == 3
        with pytest.raises(sqlite3.IntegrityError):
            await answers[1]
        assert blocker.result(10) is True
    finally:
        await asyncio.to_thread(committer.close)
    assert committer.batches == 2
    assert len([w for w in wakeups if getattr(w, "__name__", "") == "_settle"]) == 1
    with sqlite3.connect(path) as other:
        assert dict(other.execute("SELECT k, v FROM t")) == {"a": 1, "b": 3}
