"""SQLite journal: jobs, offsets, fingerprints, errors and the ledger of completed uploads.

Survives `kill -9` at any point: WAL mode, every write atomic, and the server's offset is
always re-read before resuming, so a stale journal offset costs at most a chunk. Never
stores credentials. Files are 0600, in a folder made 0700 if synapse-tui creates it. A
damaged or emptied journal is moved aside and reported (see journal_files).

One discipline for writes: every write is a unit queued to the journal's writer thread,
which runs the units in order, each atomic on its own, and commits what waits in one
transaction; nothing goes to the server before every write queued ahead of it is committed
(`durable`, awaited by the engine's HTTP clients), except a finished upload's note, which
resume finds again on the server if a crash loses it. Reads run on the caller's own
connection and see every write queued before them (`catch_up`; the engine awaits `settled`
first, so that its loop never waits). SQLite's waits for the write lock, which another
process may hold for seconds, happen on the writer's thread, never on the engine's loop.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from synapse_tui.engine import journal_files
from synapse_tui.engine.errors import JournalFailed
from synapse_tui.engine.events import JobState
from synapse_tui.engine.hashing import Identity
from synapse_tui.engine.journal_checkpoint import Checkpointer
from synapse_tui.engine.journal_locks import Fcntl, JobLocks, fcntl
from synapse_tui.engine.journal_reads import JournalReads, uploaded_among
from synapse_tui.engine.journal_rows import (
    FINISHED,
    SCHEMA,
    UNFINISHED,
    Added,
    JobKey,
    JobRecord,
    LedgerEntry,
    NewJob,
    steps_column,
)
from synapse_tui.engine.journal_units import insert, prune, revive, statement
from synapse_tui.engine.journal_writer import Unit, Writer
from synapse_tui.engine.steps import JobSteps

__all__ = [
    "FINISHED",
    "SCHEMA",
    "UNFINISHED",
    "Added",
    "JobKey",
    "JobRecord",
    "Journal",
    "LedgerEntry",
    "NewJob",
    "uploaded_among",
]


class Journal(JournalReads):
    """The state database: writes queued to its writer thread, reads on this connection."""

    FILENAME = "journal.sqlite3"
    CHECKPOINT_EVERY = 200  # commits (~1,000 WAL pages of small-file writes)
    BACKSTOP_PAGES = 16384
    # Seconds closing waits for another process's lock before it gives up the writes not
    # committed (a kill -9 at that point: resume finds their uploads on the server).
    CLOSE_PATIENCE = 5.0
    # Seconds `settled` may block the loop for writes queued while it waited: a commit
    # under way takes a few ms; longer, the writer waits for a lock and the loop must not.
    SETTLE_SLICE = 0.02

    def __init__(self, directory: Path, *, fcntl_call: Fcntl = fcntl.fcntl) -> None:
        self.directory = directory
        self.path = directory / self.FILENAME
        journal_files.prepare(directory, self.path)  # raises JournalError (one line)
        try:
            # The writer's connection: used by its thread only, once set up here.
            self._w = sqlite3.connect(
                self.path, timeout=30, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise journal_files.unusable(self.path, exc) from None
        try:
            self._open()
            # Made on any thread (the engine service opens it off its loop), used on one.
            self._db = sqlite3.connect(
                self.path, timeout=30, isolation_level=None, check_same_thread=False
            )
            journal_files.configure(self._db, self.BACKSTOP_PAGES)
            self._db.row_factory = sqlite3.Row
        except (sqlite3.Error, OSError) as exc:
            self._w.close()
            raise journal_files.unusable(self.path, exc) from None
        self._checkpointer = Checkpointer(self.path)
        self._commits = 0
        self._locks = JobLocks(directory, fcntl_call)
        self._locks_mutex = threading.Lock()  # the writer's thread releases locks too
        self._unlocking: dict[int, int] = {}  # job id -> its release's number
        self._unlocks = 0
        self._writer = Writer(self._w, lambda: self._tx(), self._committed)

    def _open(self) -> None:
        """Set the writer's connection up and make the tables: the first reads of the file,
        where SQLite finds a damaged one."""
        journal_files.switch_to_wal(self._w)
        journal_files.configure(self._w, self.BACKSTOP_PAGES)
        for sql in SCHEMA.split(";"):
            if sql.strip():
                self._w.execute(sql)
        for suffix in ("-wal", "-shm"):
            extra = Path(str(self.path) + suffix)
            if extra.exists():
                os.chmod(extra, 0o600)
        journal_files.note_initialised(self.path)

    @property
    def connection(self) -> sqlite3.Connection:
        """The reading connection, for index queries of this process (engine/session.py);
        call `catch_up` (or await `settled`) first to see this process's own writes."""
        return self._db

    def _committed(self) -> None:
        self._commits += 1
        if self._commits % self.CHECKPOINT_EVERY == 0:
            self._checkpointer.poke()

    def close(self, patience: float | None = None) -> None:
        """Commit what waits, then let go of everything. Bounded: when another process
        holds the lock past `patience` seconds (CLOSE_PATIENCE), the writes not committed
        are given up (each is atomic: none is half made) and JournalFailed says so."""
        patience = self.CLOSE_PATIENCE if patience is None else patience
        lost = self._writer.close(patience)
        self._checkpointer.stop()
        with self._locks_mutex:
            self._unlocking.clear()
            self._locks.close()
        self._db.close()
        self._w.close()
        if lost:
            raise JournalFailed(
                f"the journal {self.path} was not saved: another process held its lock for"
                f" {patience:g}s; {lost} change(s) lost (resume checks them on the server)"
            )

    # -- the one write discipline -----------------------------------------------------------

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One unit, atomic inside the writer's transaction (the writer's thread only)."""
        self._w.execute("SAVEPOINT one_write")
        try:
            yield self._w
        except BaseException:
            if self._w.in_transaction:  # else SQLite undid the whole transaction (Writer._apply)
                self._w.execute("ROLLBACK TO one_write")
                self._w.execute("RELEASE one_write")
            raise
        self._w.execute("RELEASE one_write")

    def write(self, unit: Unit, *, durable: bool = True) -> None:
        """Queue `unit`; `durable=False`: the server need not wait for it (see the module).
        Once a write failed, later ones are dropped: the failure is raised, as one
        JournalFailed, where the engine waits for its writes (`durable`, `settled`), which
        stops it; raised here it came out of every state change, a traceback each."""
        try:
            self._writer.submit(unit, durable=durable)
        except BaseException as exc:
            if exc is not self._writer.broken:
                raise

    def _failed(self, exc: BaseException) -> BaseException:
        """`exc` as the engine stops on it, when it is the writer's failure."""
        if exc is self._writer.broken and not isinstance(exc, JournalFailed):
            return JournalFailed(f"cannot write the journal {self.path}: {exc}")
        return exc

    def call(self, unit: Unit) -> Any:
        """Queue `unit` and wait (blocking) for what it returns, once committed."""
        try:
            return self._writer.wait(self._writer.submit(unit))
        except Exception as exc:
            raise self._failed(exc) from exc

    async def call_async(self, unit: Unit) -> Any:
        """Queue `unit` and await what it returns, once committed; the loop goes on."""
        try:
            return await self._writer.result(self._writer.submit(unit))
        except Exception as exc:
            raise self._failed(exc) from exc

    def caught_up(self) -> bool:
        """Whether every write queued so far is committed."""
        return self._writer.caught_up()

    def catch_up(self) -> None:
        """Block until every write queued so far is committed (what reads do first). After
        a failed write, reads see what was committed (the failure is raised elsewhere).
        On the engine's loop, await `settled` first: this then finds nothing to wait for."""
        if self._writer.broken is None and not self._writer.caught_up():
            try:
                self._writer.wait()
            except BaseException as exc:
                if exc is not self._writer.broken:
                    raise

    async def settled(self) -> None:
        """Every write queued so far is committed when this returns: those queued before
        the call, and those other tasks queued while it waited, so that the reads that
        follow (up to the caller's next `await`) wait for nothing. The loop goes on
        meanwhile; it waits at most SETTLE_SLICE at a time, for a commit under way (never
        for another process's lock: then the wait goes back to awaiting)."""
        try:
            while True:
                await self._writer.result()
                if self._writer.caught_up() or self._writer.wait_briefly(self.SETTLE_SLICE):
                    self._writer.check_broken()
                    return
        except Exception as exc:
            raise self._failed(exc) from exc

    def has_room(self) -> bool:
        """Whether the writer's queue takes more without waiting (see `room`)."""
        return self._writer.has_room()

    async def room(self) -> None:
        """Until the writer's queue has room: a producer of many writes on the loop awaits
        this between batches (`write` never blocks there)."""
        try:
            await self._writer.room()
        except Exception as exc:
            raise self._failed(exc) from exc

    async def durable(self) -> None:
        """Every write that must precede the next request is committed: the engine's
        clients await this before each request."""
        try:
            await self._writer.result(durable=True)
        except Exception as exc:
            raise self._failed(exc) from exc

    def _read(self) -> sqlite3.Connection:
        self.catch_up()
        return self._db

    def add_job(
        self,
        path: bytes,
        identity: Identity,
        fingerprint: str,
        host: str,
        chunk_size: int,
        priority: int = 0,
        steps: JobSteps | None = None,
    ) -> JobRecord:
        """Add one queued job and wait (blocking) for its row; the engine uses `add_jobs`."""
        spec = NewJob(path, identity, fingerprint, host, chunk_size, priority, steps, force=True)
        added: list[Added] = self.call(insert([spec]))
        assert added[0].record is not None
        return added[0].record

    async def add_jobs(self, specs: list[NewJob]) -> list[Added]:
        """Add queued jobs in one write; their rows, once committed (the loop goes on)."""
        if not specs:
            return []
        added: list[Added] = await self.call_async(insert(specs))
        return added

    async def revive(self, job_ids: list[int]) -> set[int]:
        """Queue these cancelled jobs again in one write: the ids whose row was still there
        (journal_units.revive)."""
        if not job_ids:
            return set()
        kept: set[int] = await self.call_async(revive(job_ids))
        return kept

    def set_path(self, job_id: int, path: bytes) -> None:
        self.write(
            statement(
                "UPDATE jobs SET path = ?, updated_at = ? WHERE id = ?", (path, time.time(), job_id)
            )
        )

    _UPDATABLE = frozenset(
        {
            "state",
            "upload_id",
            "upload_url",
            "creating_since",
            "offset",
            "attempts",
            "last_error",
            "md5",
            "resumed_from",
            "result",
            "priority",
            "extra",
        }
    )

    def update(self, job_id: int, **values: Any) -> None:
        """Set columns of one job, in one write."""
        unknown = set(values) - self._UPDATABLE
        if unknown:
            raise ValueError(f"not updatable: {sorted(unknown)}")
        if "state" in values and isinstance(values["state"], JobState):
            values["state"] = values["state"].value
        if isinstance(values.get("extra"), JobSteps):
            values["extra"] = json.dumps(values["extra"].to_json())
        elif "extra" in values and not isinstance(values["extra"], str | None):
            values["extra"] = json.dumps(values["extra"])
        values["updated_at"] = time.time()
        cols = ", ".join(f"{k} = ?" for k in values)
        self.write(statement(f"UPDATE jobs SET {cols} WHERE id = ?", (*values.values(), job_id)))

    def mark_creating(self, job_ids: list[int], at: float) -> None:
        """Note that a new upload may be created for each of these jobs from `at` on (their
        `creating_since`), in one write."""
        marks = ",".join("?" * len(job_ids))
        self.write(
            statement(
                f"UPDATE jobs SET creating_since = ?, updated_at = ? WHERE id IN ({marks})",
                (at, time.time(), *job_ids),
            )
        )

    def add_error(self, job_id: int, message: str) -> None:
        now = time.time()

        def unit(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO job_errors (job_id, at, message) VALUES (?,?,?)",
                (job_id, now, message),
            )
            db.execute(
                "UPDATE jobs SET last_error = ?, updated_at = ? WHERE id = ?",
                (message, now, job_id),
            )

        self.write(unit)

    def complete(
        self,
        job: JobRecord | JobKey,
        md5: str,
        upload_id: str,
        resumed_from: int,
        result: Any,
        state: JobState = JobState.DONE,
        steps: JobSteps | None = None,
        *,
        lazy: bool = False,
    ) -> None:
        """Mark a job uploaded and add it to the ledger, in one write (`lazy`: requests need
        not wait for it, see the module's docstring)."""
        now = time.time()
        row = (
            state.value,
            md5,
            upload_id,
            resumed_from,
            json.dumps(result),
            steps_column(steps),
            now,
            job.id,
        )
        entry = (job.host, job.fingerprint, job.size, md5, upload_id, job.path, now)

        def unit(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE jobs SET state = ?, md5 = ?, upload_id = ?, offset = size,"
                " resumed_from = ?, result = ?, extra = ?, creating_since = NULL, updated_at = ?"
                " WHERE id = ?",
                row,
            )
            db.execute("INSERT OR REPLACE INTO ledger VALUES (?,?,?,?,?,?,?)", entry)

        self.write(unit, durable=not lazy)

    def prune(self, states: tuple[JobState, ...]) -> tuple[int, int]:
        """Delete the jobs in `states`; (deleted, kept). Kept: jobs holding collection steps
        (`extra`), which a later run reads so that it never registers a file twice. The
        ledger of uploads is untouched: what was uploaded stays known."""
        counts: tuple[int, int] = self.call(prune(states))
        return counts

    async def prune_async(self, states: tuple[JobState, ...]) -> tuple[int, int]:
        """`prune` on the engine's loop: the loop goes on while the writer deletes (and
        waits for another process's lock)."""
        counts: tuple[int, int] = await self.call_async(prune(states))
        return counts

    # -- locks ------------------------------------------------------------------------------

    def try_lock(self, job_id: int) -> bool:
        """Take this process's lock on a job; False if another process holds it (see
        journal_locks). A lock whose release waits for a commit is kept instead."""
        with self._locks_mutex:
            self._unlocking.pop(job_id, None)  # taken again: keep it
            return self._locks.try_lock(job_id)

    def unlock(self, job_id: int) -> None:
        """Release a job's lock once the writes queued before are committed: another
        process that takes the lock must read what this one wrote under it (a job done
        here, re-read there as still queued, would be uploaded twice)."""
        with self._locks_mutex:
            if not self._locks.holds(job_id):
                return
            self._unlocks += 1
            number = self._unlocking[job_id] = self._unlocks
        self._writer.after_commit(lambda: self._release(job_id, number))

    def _release(self, job_id: int, number: int) -> None:
        with self._locks_mutex:
            if self._unlocking.get(job_id) == number:  # not taken again since
                del self._unlocking[job_id]
                self._locks.unlock(job_id)
