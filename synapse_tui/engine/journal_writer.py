"""The journal's writer: one thread owns the write connection and commits queued writes in order.

A write is a *unit*: a function of the connection, run by this thread inside a savepoint
(atomic on its own), in the order the units were queued. The thread takes what waits (up to
GROUP units) into one transaction, commits it, and only then tells the waiters. Waiting for
SQLite's write lock (another process holds it: up to busy_timeout, then again) happens here,
never on the engine's loop, which meanwhile goes on with everything that does not need the
write. The queue is bounded: past BOUND units, a thread without an event loop waits in
`submit` for room; on a loop `submit` never blocks, and a producer of many units awaits
`room` between its batches (see `submit`). `close` is bounded: past its patience it gives up
the units not committed (never part of one transaction: see `_apply`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

log = logging.getLogger(__name__)

Unit = Callable[[sqlite3.Connection], Any]


class Ticket:
    """One queued unit: its place in the order, and what it returned or raised."""

    __slots__ = ("error", "fn", "result", "seq")

    def __init__(self, seq: int, fn: Unit) -> None:
        self.seq = seq
        self.fn = fn
        self.result: Any = None
        self.error: BaseException | None = None


class Abandoned(RuntimeError):
    """The writer gave up on the units not committed when the journal closed."""


class Writer:
    GROUP = 512  # units per transaction at most
    BOUND = 8192  # units queued at most (see `submit`)
    # SQLite's own wait for the lock, per try: the writer tries again after it, unless the
    # journal is closing and its patience is over (see `close`).
    LOCK_TRY = 0.25
    # A unit nothing waits for (`durable=False`: a small file's done note) is committed with
    # the next one something waits for, or this many seconds after it was queued: one
    # commit for many files, not a thread wake-up and a commit for every one or two.
    LAZY = 0.02

    def __init__(
        self,
        db: sqlite3.Connection,
        unit_tx: Callable[[], AbstractContextManager[sqlite3.Connection]],
        on_commit: Callable[[], None],
    ) -> None:
        self._db = db
        self._unit_tx = unit_tx  # looked up per unit (the crash harness replaces it)
        self._on_commit = on_commit
        self._cv = threading.Condition()
        self._queue: deque[Ticket] = deque()
        self._submitted = 0
        self._durable = 0  # the last unit a request must wait for (see `durable`)
        self._committed = 0
        self._taken = 0  # the last unit the writer's thread took
        self._blocked = 0  # callers blocked in `wait`
        self._lazy_since = 0.0  # when the oldest unit nothing waits for yet was queued
        self._actions: list[tuple[int, Callable[[], None]]] = []  # after a commit
        self._waiters: list[tuple[int, asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        # Producers awaiting room in the queue (`room`), woken as the writer takes units.
        self._roomers: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self.broken: BaseException | None = None
        self._stopping = False
        self._abandon = False  # `close` ran out of patience: commit nothing more
        self.lost = 0  # units given up then
        db.execute(f"PRAGMA busy_timeout={int(self.LOCK_TRY * 1000)}")
        self._thread = threading.Thread(target=self._run, name="synapse-journal-writer")
        self._thread.daemon = True
        self._thread.start()

    # -- the caller's side ------------------------------------------------------------------

    def submit(self, fn: Unit, *, durable: bool = True) -> Ticket:
        """Queue `fn`; `durable=False`: a request to the server need not wait for it.

        Past BOUND units in waiting, a caller without an event loop waits here for room; on
        an event loop this never blocks (the writer may wait for another process's lock for
        as long as it holds it). The queue stays bounded there all the same: what queues
        one unit per job (state changes) has at most the jobs in memory in waiting, each
        upload awaiting its writes before its next request, and a bulk producer (a scan's
        batch, a bulk control over rows) awaits `room` between its batches."""
        on_loop = _on_loop()
        with self._cv:
            self._check()
            while not on_loop and len(self._queue) >= self.BOUND:
                self._cv.wait()  # backpressure: the writer is behind by BOUND units
                self._check()
            self._submitted += 1
            ticket = Ticket(self._submitted, fn)
            first = not self._queue
            if first:
                self._lazy_since = time.monotonic()
            self._queue.append(ticket)
            if durable:
                self._durable = ticket.seq
            if durable or first or len(self._queue) >= self.GROUP:
                self._cv.notify_all()  # else the writer is awake already, or times out
            return ticket

    def _check(self) -> None:
        if self.broken is not None:
            raise self.broken
        if self._stopping:
            raise RuntimeError("the journal is closed")

    def caught_up(self) -> bool:
        return self._committed >= self._submitted

    def has_room(self) -> bool:
        return len(self._queue) < self.BOUND

    async def room(self) -> None:
        """Until the queue has room for more (below BOUND units), without blocking the loop."""
        while len(self._queue) >= self.BOUND and self.broken is None and not self._stopping:
            loop = asyncio.get_running_loop()
            future: asyncio.Future[None] = loop.create_future()
            with self._cv:
                if len(self._queue) < self.BOUND or self.broken is not None:
                    break
                self._roomers.append((loop, future))
            await future
        with self._cv:
            self._check()

    def wait(self, ticket: Ticket | None = None) -> Any:
        """Block until `ticket` (default: every unit queued so far) is committed."""
        target = ticket.seq if ticket is not None else self._submitted
        with self._cv:
            self._blocked += 1
            self._cv.notify_all()  # someone waits: lazy units are due now
            try:
                self._cv.wait_for(lambda: self._committed >= target or self.broken is not None)
            finally:
                self._blocked -= 1
        return self._outcome(ticket, target)

    async def result(self, ticket: Ticket | None = None, *, durable: bool = False) -> Any:
        """Wait (without blocking the loop) until `ticket`, or every unit queued so far
        (`durable`: every unit a request must wait for), is committed."""
        target = self._submitted
        if ticket is not None:
            target = ticket.seq
        elif durable:
            target = self._durable
        if self._committed < target and self.broken is None:
            loop = asyncio.get_running_loop()
            future: asyncio.Future[None] = loop.create_future()
            with self._cv:
                if self._committed < target and self.broken is None:
                    self._waiters.append((target, loop, future))
                    self._cv.notify_all()  # someone waits: lazy units are due now
                else:
                    future.set_result(None)
            await future
        return self._outcome(ticket, target)

    def wait_briefly(self, timeout: float) -> bool:
        """Block up to `timeout` seconds for every unit queued so far; whether they are in."""
        with self._cv:
            self._blocked += 1
            self._cv.notify_all()  # someone waits: lazy units are due now, not in LAZY
            try:
                return self._cv.wait_for(
                    lambda: self._committed >= self._submitted or self.broken is not None,
                    timeout,
                )
            finally:
                self._blocked -= 1

    def check_broken(self) -> None:
        if self.broken is not None:
            raise self.broken

    def _outcome(self, ticket: Ticket | None, target: int) -> Any:
        if ticket is not None and ticket.error is not None:
            raise ticket.error
        if self.broken is not None:  # a write failed: none after it was made
            raise self.broken
        return ticket.result if ticket is not None else None

    def after_commit(self, action: Callable[[], None]) -> None:
        """Run `action` once every unit queued so far is committed (now, if it is; else
        on the writer's thread)."""
        with self._cv:
            if self._committed < self._submitted:
                self._actions.append((self._submitted, action))
                return
        action()

    def close(self, patience: float | None = None) -> int:
        """Commit what waits, then stop the thread; 0, or (after `patience` seconds spent
        waiting for another process's lock) how many units were given up, none of them
        committed, every one before them committed (units are atomic, transactions too)."""
        with self._cv:
            self._stopping = True
            self._cv.notify_all()
        self._thread.join(patience)
        if not self._thread.is_alive():
            return 0
        with self._cv:
            self._abandon = True  # seen by the writer at its next try for the lock
        self._thread.join()  # within LOCK_TRY (or the group it is running, which commits)
        return self.lost

    # -- the writer's thread ----------------------------------------------------------------

    def _due(self) -> float | None:
        """Seconds until the queue is to be committed (0: now; None: nothing queued)."""
        if not self._queue:
            return None
        if (
            self._stopping
            or self._durable > self._taken
            or self._waiters
            or self._blocked
            or len(self._queue) >= self.GROUP
        ):
            return 0.0
        return max(0.0, self._lazy_since + self.LAZY - time.monotonic())

    def _run(self) -> None:
        try:
            self._serve()
        except BaseException as exc:  # the thread must not die unheard
            # Something outside a unit failed (a ROLLBACK that raised, `on_commit`): every
            # write, wait and read from now on raises it, and nobody waits for ever.
            log.exception("journal: the writer stopped")
            with self._cv:
                if self.broken is None:
                    self.broken = exc
                waiters, self._waiters = self._waiters, []
                roomers, self._roomers = self._roomers, []
                self._cv.notify_all()
            _wake_all([(loop, future) for _, loop, future in waiters] + roomers)

    def _serve(self) -> None:
        while True:
            with self._cv:
                while (wait := self._due()) != 0.0 and not (self._stopping and wait is None):
                    self._cv.wait(wait)
                if not self._queue:
                    return
                group = [self._queue.popleft() for _ in range(min(self.GROUP, len(self._queue)))]
                self._taken = group[-1].seq
                self._lazy_since = time.monotonic()  # what is left waits from now
                self._cv.notify_all()  # room in the queue
                roomers, self._roomers = self._roomers, []
            _wake_all(roomers)
            failure = self._apply(group) if self.broken is None else self.broken
            seq = group[-1].seq
            # The actions (lock releases) run before anyone is told of the commit: who
            # waited for it may count on them.
            self._run_actions(seq)
            with self._cv:
                if failure is not None and self.broken is None:
                    self.broken = failure
                self._committed = seq
                ready = [w for w in self._waiters if w[0] <= seq]
                self._waiters = [w for w in self._waiters if w[0] > seq]
                if isinstance(failure, Abandoned):  # nothing after it will be committed
                    ready, self._waiters = ready + self._waiters, []
                    self._queue.clear()
                    roomers, self._roomers = self._roomers, []
                else:
                    roomers = []
            self._run_actions(seq)  # any queued meanwhile, for this commit
            with self._cv:
                self._cv.notify_all()
            _wake_all([(loop, future) for _, loop, future in ready] + roomers)
            if failure is None:
                self._on_commit()
            elif isinstance(failure, Abandoned):
                return

    def _run_actions(self, seq: int) -> None:
        with self._cv:
            done = [a for a in self._actions if a[0] <= seq]
            self._actions = [a for a in self._actions if a[0] > seq]
        for _, action in done:
            try:
                action()
            except Exception:  # a lock release that failed must not stop every later write
                log.exception("journal: an action after a commit failed")

    def _apply(self, group: list[Ticket]) -> BaseException | None:
        """One transaction for `group`; the first error (a unit's, or the commit's)."""
        failure: BaseException | None = None
        while True:
            try:
                self._db.execute("BEGIN IMMEDIATE")  # waits up to LOCK_TRY for the lock
                break
            except sqlite3.OperationalError as exc:
                if not _locked(exc):
                    return exc
                # Another process holds the lock: try again, unless the journal closes and
                # its patience is over. The loop goes on meanwhile; what needs these writes
                # waits for them.
                if self._abandon:
                    return self._give_up(group)
        for ticket in group:
            try:
                with self._unit_tx() as db:
                    ticket.result = ticket.fn(db)
            except Exception as exc:  # undone alone (its savepoint); reported to its waiter
                ticket.error = exc
                failure = failure or exc
                if not self._db.in_transaction:
                    # SQLite rolled the whole transaction back (SQLITE_FULL, an I/O error):
                    # the group's earlier units are undone too, and a later one would be
                    # committed on its own, out of order. None of the group is made.
                    for other in group:
                        other.error = other.error or exc
                    return exc
        while True:
            try:
                self._db.execute("COMMIT")
                return failure
            except sqlite3.OperationalError as exc:
                # BUSY on COMMIT leaves the transaction open: SQLite's way is to try again.
                if not (_locked(exc) and self._db.in_transaction) or self._abandon:
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                    return self._give_up(group) if _locked(exc) else exc
            except sqlite3.Error as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                return exc

    def _give_up(self, group: list[Ticket]) -> Abandoned:
        """The journal closes without these units (nor any queued after them)."""
        with self._cv:
            self.lost = len(group) + len(self._queue)
        failure = Abandoned(f"{self.lost} change(s) not saved: another process held the lock")
        for ticket in group:
            ticket.error = ticket.error or failure
        return failure


def _on_loop() -> bool:
    """Whether this thread runs an event loop (whose turning nothing may block)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _wake_all(waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]]) -> None:
    for loop, future in waiters:
        # A waiter's loop may be closed (its coroutine was cancelled, asyncio.run ended):
        # nobody waits there any more, and the writes queued after it must still be
        # committed.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_wake, future)


def _locked(exc: sqlite3.OperationalError) -> bool:
    text = str(exc)
    return "locked" in text or "busy" in text


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
