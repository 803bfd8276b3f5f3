"""One thread that commits the store's row writes, many to a transaction (group commit).

Each upload request ends with one small row write (insert, advance or complete) that
must be durable before the answer: a SQLite commit with `synchronous=FULL` (an fsync
of the WAL), and for a new upload an fsync of the files folder first. Run from the
worker pool, eight requests meant eight connections taking turns on one write lock:
the losers sleep in SQLite's busy handler and re-read the pages the winner changed.

Here the writes queue for one thread with one connection. It takes everything queued,
fsyncs the folder once if any write needs it, applies the writes in one transaction,
commits once, then answers them all. A failing write rolls back alone: the batch is then
applied again with each write in a savepoint of its own (not every time: the savepoints
were two of the three statements each write cost).
Under load that is one folder fsync and one WAL fsync per batch instead of per request,
and no lock contention. A write is answered only after its commit, never before.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MAX_BATCH = 64


@dataclass(slots=True)
class _Write:
    """A queued write and who waits for it: a thread's future, or an event loop's."""

    op: Callable[[sqlite3.Connection], Any]
    sync_dir: bool
    future: concurrent.futures.Future[Any] | None = None
    awaited: asyncio.Future[Any] | None = None

    def start(self) -> bool:
        """False when nobody waits any more (cancelled before it ran): skip it."""
        if self.future is not None:
            return self.future.set_running_or_notify_cancel()
        assert self.awaited is not None
        return not self.awaited.cancelled()  # a read only: the loop may cancel it meanwhile


class GroupCommitter:
    """Apply `op(connection)` calls in batches on a thread of its own."""

    def __init__(
        self,
        db: sqlite3.Connection,
        sync_dir: Callable[[], None],
        name: str = "synapse-commit",
    ) -> None:
        self._db = db  # used by this object's thread only from now on
        self._sync_dir = sync_dir
        self._queue: queue.SimpleQueue[_Write | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        self.batches = 0  # commits made (for tests and curiosity)

    def submit(
        self, op: Callable[[sqlite3.Connection], Any], *, sync_dir: bool = False
    ) -> concurrent.futures.Future[Any]:
        """Queue a write; the future ends with op's result once its transaction is committed."""
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._put(_Write(op, sync_dir, future=future))
        return future

    def submit_on_loop(
        self, op: Callable[[sqlite3.Connection], Any], *, sync_dir: bool = False
    ) -> asyncio.Future[Any]:
        """`submit` for the event loop (call it there): an asyncio future, answered with the
        rest of its batch in one callback on the loop, not one thread-safe call per write."""
        awaited = asyncio.get_running_loop().create_future()
        self._put(_Write(op, sync_dir, awaited=awaited))
        return awaited

    def _put(self, write: _Write) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("the store is closed")
            self._queue.put(write)

    def close(self) -> None:
        """Finish every queued write, then stop the thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        db = self._db
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            batch = [first]
            while len(batch) < MAX_BATCH:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stopping = True
                    break
                batch.append(nxt)
            self._commit(db, [w for w in batch if w.start()])

    def _commit(self, db: sqlite3.Connection, batch: list[_Write]) -> None:
        if not batch:
            return
        try:
            if any(w.sync_dir for w in batch):
                self._sync_dir()
            outcomes = self._apply(db, batch, isolated=False)
            if outcomes is None:  # a write failed: redo the batch, each write on its own
                outcomes = self._apply(db, batch, isolated=True)
            assert outcomes is not None
        except BaseException as exc:  # the commit itself failed: nothing in it landed
            _answer(batch, [(False, exc)] * len(batch))
            return
        self.batches += 1
        _answer(batch, outcomes)

    @staticmethod
    def _apply(
        db: sqlite3.Connection, batch: list[_Write], isolated: bool
    ) -> list[tuple[bool, Any]] | None:
        """Apply the batch in one transaction and commit it; the outcome of each write.

        Not `isolated` (the usual case, where no write fails): the writes run back to back,
        and the first failure rolls the whole transaction back and returns None. Isolated:
        each write in a savepoint of its own, so a failing one rolls back alone. A write is
        a few statements on the database and nothing else, so running it again after a
        rollback is safe; the savepoints cost two statements per write when nothing fails.
        """
        outcomes: list[tuple[bool, Any]] = []
        db.execute("BEGIN IMMEDIATE")
        try:
            for write in batch:
                if not isolated:
                    try:
                        outcomes.append((True, write.op(db)))
                    except Exception:
                        db.execute("ROLLBACK")
                        return None
                    continue
                db.execute("SAVEPOINT one_write")
                try:
                    outcomes.append((True, write.op(db)))
                except Exception as exc:
                    db.execute("ROLLBACK TO one_write")
                    outcomes.append((False, exc))
                db.execute("RELEASE one_write")
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return outcomes


def _answer(batch: list[_Write], outcomes: list[tuple[bool, Any]]) -> None:
    """Settle each write's future: threads' at once, each loop's in one callback there."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], bool, Any]]] = {}
    for write, (ok, value) in zip(batch, outcomes, strict=True):
        if write.future is not None:
            if ok:
                write.future.set_result(value)
            else:
                write.future.set_exception(value)
        elif write.awaited is not None:
            by_loop.setdefault(write.awaited.get_loop(), []).append((write.awaited, ok, value))
    for loop, answers in by_loop.items():
        with contextlib.suppress(RuntimeError):  # that loop is closed: nobody is left to answer
            loop.call_soon_threadsafe(_settle, answers)


def _settle(answers: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for awaited, ok, value in answers:
        if awaited.done():  # cancelled meanwhile
            continue
        if ok:
            awaited.set_result(value)
        else:
            awaited.set_exception(value)
