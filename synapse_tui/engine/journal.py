"""SQLite journal: jobs, offsets, fingerprints, errors and the ledger of completed uploads.

Survives `kill -9` at any point: WAL mode, one transaction per change, and the server's
offset is always re-read before resuming, so a stale journal offset costs at most a chunk.
Never stores credentials. Files are 0600, in a folder made 0700 if synapse-tui creates it.
A damaged or emptied journal is moved aside and reported (see journal_files).

A write may be *lazy* (`complete(..., lazy=True)`): it joins a transaction that commits when
the flush scheduled with `defer_commits` runs (the engine: within 5 ms), or earlier with the
next ordinary write, so many small files cost one commit each instead of two. Only writes
the engine can lose to a crash are lazy: a completion the server holds is found again on
resume (see `FileUpload`). While lazy writes wait, this connection holds SQLite's write
lock: other processes' writes wait those few milliseconds.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import sqlite3
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synapse_tui.engine import journal_files
from synapse_tui.engine.events import JobState
from synapse_tui.engine.hashing import Identity

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY,
    path BLOB NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    inode INTEGER NOT NULL,
    device INTEGER NOT NULL,
    fingerprint TEXT NOT NULL,
    host TEXT NOT NULL,
    chunk_size INTEGER NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL,
    upload_id TEXT,
    upload_url TEXT,
    creating_since REAL,
    offset INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    md5 TEXT,
    resumed_from INTEGER,
    result TEXT,
    extra TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state);
CREATE INDEX IF NOT EXISTS jobs_fingerprint ON jobs(fingerprint);
CREATE INDEX IF NOT EXISTS jobs_queue ON jobs(state, priority DESC, id);
CREATE INDEX IF NOT EXISTS jobs_upload_id ON jobs(upload_id) WHERE upload_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS job_errors (
    job_id INTEGER NOT NULL,
    at REAL NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS job_errors_job ON job_errors(job_id);
CREATE TABLE IF NOT EXISTS ledger (
    host TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    size INTEGER NOT NULL,
    md5 TEXT NOT NULL,
    upload_id TEXT NOT NULL,
    path BLOB NOT NULL,
    completed_at REAL NOT NULL,
    PRIMARY KEY (host, fingerprint, size)
);
"""

# What `status --prune` forgets (the ledger of uploads stays).
FINISHED = (JobState.DONE, JobState.SKIPPED, JobState.FAILED, JobState.CANCELLED)
UNFINISHED = (
    JobState.QUEUED,
    JobState.HASHING,
    JobState.UPLOADING,
    JobState.FINALIZING,
    JobState.REGISTERING,
    JobState.PAUSED,
)


@dataclass
class JobRecord:
    """One row of `jobs`."""

    id: int
    path: bytes
    size: int
    identity: Identity
    fingerprint: str
    host: str
    chunk_size: int
    priority: int
    state: JobState
    upload_id: str | None
    upload_url: str | None
    creating_since: float | None
    offset: int
    attempts: int
    last_error: str | None
    md5: str | None
    resumed_from: int | None
    created_at: float
    updated_at: float
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> JobRecord:
        return cls(
            id=row["id"],
            path=bytes(row["path"]),
            size=row["size"],
            identity=Identity(row["size"], row["mtime_ns"], row["inode"], row["device"]),
            fingerprint=row["fingerprint"],
            host=row["host"],
            chunk_size=row["chunk_size"],
            priority=row["priority"],
            state=JobState(row["state"]),
            upload_id=row["upload_id"],
            upload_url=row["upload_url"],
            creating_since=row["creating_since"],
            offset=row["offset"],
            attempts=row["attempts"],
            last_error=row["last_error"],
            md5=row["md5"],
            resumed_from=row["resumed_from"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            extra=json.loads(row["extra"]) if row["extra"] else {},
        )


@dataclass(frozen=True)
class LedgerEntry:
    host: str
    fingerprint: str
    size: int
    md5: str
    upload_id: str
    path: bytes
    completed_at: float


_OFD_SETLK: int | None = getattr(fcntl, "F_OFD_SETLK", None)  # Linux 3.15+
_UNSUPPORTED = (errno.EINVAL, errno.ENOSYS, errno.ENOLCK, errno.EOPNOTSUPP)
_LOCK_FLAGS = os.O_CREAT | os.O_RDWR | getattr(os, "O_CLOEXEC", 0)


def _flock(kind: int, job_id: int) -> bytes:
    """A `struct flock` for byte `job_id` (l_type, l_whence, l_start, l_len, l_pid = 0)."""
    return struct.pack("hhqqi4x", kind, os.SEEK_SET, job_id, 1, 0)


@dataclass(frozen=True)
class JobKey:
    """What `complete` needs of a job, for a caller that has it in memory."""

    id: int
    path: bytes
    size: int
    fingerprint: str
    host: str


class _Checkpointer:
    """Copies the WAL back into the database on a thread of its own, when poked.

    SQLite's automatic checkpoint runs inside the commit that crosses its threshold: with
    synchronous=NORMAL that is two fsyncs, 15-22 ms during which the engine's loop (and
    every upload) waited, once every ~250 commits of a many-small-files batch. A PASSIVE
    checkpoint here blocks no writer; SQLite releases the GIL while it runs.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.ran = threading.Event()  # set after each checkpoint (for tests)

    def poke(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="synapse-journal-checkpoint", daemon=True
            )
            self._thread.start()
        self._wake.set()

    def stop(self) -> None:
        if self._thread is not None:
            self._stopping = True
            self._wake.set()
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        db = sqlite3.connect(self._path, timeout=30, isolation_level=None)
        try:
            while True:
                self._wake.wait()
                self._wake.clear()
                if self._stopping:
                    return
                with contextlib.suppress(sqlite3.Error):  # the next poke tries again
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)")
                self.ran.set()
        finally:
            db.close()


class Journal:
    """The state database. Calls are short and synchronous; one instance per process."""

    FILENAME = "journal.sqlite3"
    CHECKPOINT_EVERY = 200  # commits (~1,000 WAL pages of small-file writes)
    BACKSTOP_PAGES = 16384

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / self.FILENAME
        journal_files.prepare(directory, self.path)  # raises JournalError (one line)
        try:
            self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        except sqlite3.Error as exc:
            raise journal_files.unusable(self.path, exc) from None
        try:
            self._open()
        except (sqlite3.Error, OSError) as exc:
            self._db.close()
            raise journal_files.unusable(self.path, exc) from None
        self._checkpointer = _Checkpointer(self.path)
        self._commits = 0
        self._held: dict[int, int] = {}  # job id -> its lock file's fd (-1: a byte of jobs.lock)
        self._lock_fd = -1
        self._use_ofd = _OFD_SETLK is not None
        self._schedule: Callable[[Callable[[], None]], object] | None = None
        self._lazy_open = False  # a transaction of lazy writes waits for flush()
        self._batches = 0
        self._unlock_after_commit: set[int] = set()

    def _open(self) -> None:
        """Set the connection up and make the tables: the first reads of the file, where
        SQLite finds a damaged one."""
        self._db.row_factory = sqlite3.Row
        self._wal()
        # NORMAL in WAL mode survives any process crash; only an OS crash may lose the last
        # commits, and the server's offset is re-read on resume anyway.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=30000")
        # Checkpoints run on their own thread (see _Checkpointer); this connection does one
        # itself only if the WAL outgrew 64 MiB all the same.
        self._db.execute(f"PRAGMA wal_autocheckpoint={self.BACKSTOP_PAGES}")
        for statement in SCHEMA.split(";"):
            if statement.strip():
                self._db.execute(statement)
        for suffix in ("-wal", "-shm"):
            extra = Path(str(self.path) + suffix)
            if extra.exists():
                os.chmod(extra, 0o600)
        journal_files.note_initialised(self.path)

    def _wal(self, patience: float = 30.0) -> None:
        """Switch to WAL. Two processes opening a new journal at once: the switch of one
        meets the other's lock and SQLite answers "database is locked" at once, without
        its busy handler, so it is tried again here for as long as busy_timeout waits."""
        deadline = time.monotonic() + patience
        delay = 0.005
        while True:
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise
            time.sleep(delay)
            delay = min(0.1, delay * 2)

    @property
    def connection(self) -> sqlite3.Connection:
        """The connection, for index queries of this process (engine/session.py)."""
        return self._db

    def defer_commits(self, schedule: Callable[[Callable[[], None]], object] | None) -> None:
        """Let lazy writes wait for `schedule(flush)` (a timer on the engine's loop); None:
        commit each write at once again (after committing what waits)."""
        if schedule is None:
            self.flush()
        self._schedule = schedule

    def flush(self) -> None:
        """Commit the lazy writes that wait, if any."""
        if self._lazy_open:
            self._db.execute("COMMIT")
            self._lazy_open = False
            self._committed()
        waiting, self._unlock_after_commit = self._unlock_after_commit, set()
        for job_id in waiting:
            self.unlock(job_id)

    def _committed(self) -> None:
        self._commits += 1
        if self._commits % self.CHECKPOINT_EVERY == 0:
            self._checkpointer.poke()

    def close(self) -> None:
        self.flush()
        self._checkpointer.stop()
        for job_id in list(self._held):
            self.unlock(job_id)
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1
        self._db.close()

    @contextmanager
    def _tx(self, lazy: bool = False, single: bool = False) -> Iterator[sqlite3.Connection]:
        """One write, atomic. `single`: the write is one statement, atomic on its own
        (SQLite undoes a failed statement and nothing else), so it needs no savepoint
        inside a transaction and no BEGIN outside one: 2 statements fewer a write."""
        if not self._db.in_transaction and lazy and self._schedule is not None:
            self._db.execute("BEGIN IMMEDIATE")
            self._lazy_open = True
            self._schedule(self.flush)
        if self._db.in_transaction and single:
            yield self._db
            if not lazy and not self._batches:
                self.flush()
            return
        if single:  # autocommit: the statement is its own transaction
            yield self._db
            self._committed()
            return
        if self._db.in_transaction:  # batch() or lazy writes: a savepoint keeps this atomic
            self._db.execute("SAVEPOINT one_write")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK TO one_write")
                self._db.execute("RELEASE one_write")
                raise
            self._db.execute("RELEASE one_write")
            if not lazy and not self._batches:
                self.flush()  # an ordinary write is committed when it returns
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
        self._committed()

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Make the writes inside one transaction (a scan batch: one commit, not one per file).

        Each write stays atomic on its own, and what was written is committed even when the
        block ends with an exception: the engine may already act on those rows. Keep the
        block free of awaits, or other writers of this process would join the batch.
        """
        self._batches += 1
        try:
            if self._db.in_transaction:
                yield  # inside a batch, or joining the lazy writes (committed with them)
                return
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            finally:
                self._db.execute("COMMIT")
                self._committed()
        finally:
            self._batches -= 1

    # -- jobs -------------------------------------------------------------------------------

    def add_job(
        self,
        path: bytes,
        identity: Identity,
        fingerprint: str,
        host: str,
        chunk_size: int,
        priority: int = 0,
        extra: dict[str, Any] | None = None,
    ) -> JobRecord:
        now = time.time()
        with self._tx(single=True) as db:
            cur = db.execute(
                "INSERT INTO jobs (path, size, mtime_ns, inode, device, fingerprint, host,"
                " chunk_size, priority, state, extra, created_at, updated_at)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    path,
                    identity.size,
                    identity.mtime_ns,
                    identity.inode,
                    identity.device,
                    fingerprint,
                    host,
                    chunk_size,
                    priority,
                    JobState.QUEUED.value,
                    json.dumps(extra) if extra else None,
                    now,
                    now,
                ),
            )
            job_id = cur.lastrowid
        assert job_id is not None
        # The row as written (the columns left out take their schema defaults), without
        # reading it back: one query fewer per file of a scan.
        return JobRecord(
            id=job_id,
            path=path,
            size=identity.size,
            identity=identity,
            fingerprint=fingerprint,
            host=host,
            chunk_size=chunk_size,
            priority=priority,
            state=JobState.QUEUED,
            upload_id=None,
            upload_url=None,
            creating_since=None,
            offset=0,
            attempts=0,
            last_error=None,
            md5=None,
            resumed_from=None,
            created_at=now,
            updated_at=now,
            extra=json.loads(json.dumps(extra)) if extra else {},
        )

    def get(self, job_id: int) -> JobRecord:
        row = self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise KeyError(job_id)
        return JobRecord.from_row(row)

    def jobs(self, states: tuple[JobState, ...] | None = None) -> list[JobRecord]:
        if states:
            marks = ",".join("?" * len(states))
            rows = self._db.execute(
                f"SELECT * FROM jobs WHERE state IN ({marks}) ORDER BY priority DESC, id",
                [s.value for s in states],
            )
        else:
            rows = self._db.execute("SELECT * FROM jobs ORDER BY id")
        return [JobRecord.from_row(r) for r in rows]

    def unfinished(self, host: str | None = None) -> list[JobRecord]:
        jobs = self.jobs(UNFINISHED)
        return [j for j in jobs if host is None or j.host == host]

    def unfinished_pages(self, host: str, page: int = 500) -> Iterator[JobRecord]:
        """The unfinished jobs of `host`, state by state and by id, a page at a time from
        the state index: recovery never reads the whole table at once."""
        for state in UNFINISHED:
            after = 0
            while True:
                rows = self._db.execute(
                    "SELECT * FROM jobs INDEXED BY jobs_state WHERE state = ? AND id > ?"
                    " ORDER BY id LIMIT ?",
                    (state.value, after, page),
                ).fetchall()
                for row in rows:
                    if row["host"] == host:
                        yield JobRecord.from_row(row)
                if len(rows) < page:
                    break
                after = rows[-1]["id"]

    def count_unfinished(self, host: str) -> int:
        marks = ",".join("?" * len(UNFINISHED))
        (n,) = self._db.execute(
            f"SELECT COUNT(*) FROM jobs WHERE host = ? AND state IN ({marks})",
            (host, *[s.value for s in UNFINISHED]),
        ).fetchone()
        return int(n)

    def known_upload_ids(self, upload_ids: list[str]) -> set[str]:
        """Which of `upload_ids` a job of this journal holds (by index, a few at a time)."""
        known: set[str] = set()
        for start in range(0, len(upload_ids), 500):
            part = upload_ids[start : start + 500]
            rows = self._db.execute(
                f"SELECT upload_id FROM jobs WHERE upload_id IN ({','.join('?' * len(part))})",
                part,
            )
            known.update(r[0] for r in rows)
        return known

    def find_unfinished(self, path: bytes, fingerprint: str, host: str) -> JobRecord | None:
        row = self._db.execute(
            "SELECT * FROM jobs WHERE path = ? AND fingerprint = ? AND host = ? AND state IN"
            f" ({','.join('?' * len(UNFINISHED))}) ORDER BY id DESC LIMIT 1",
            (path, fingerprint, host, *[s.value for s in UNFINISHED]),
        ).fetchone()
        return JobRecord.from_row(row) if row else None

    def find_cancelled(self, path: bytes, fingerprint: str, host: str) -> JobRecord | None:
        """The last cancelled job of this file that left an upload on the server (queued
        again, it resumes that upload instead of orphaning it)."""
        row = self._db.execute(
            "SELECT * FROM jobs WHERE path = ? AND fingerprint = ? AND host = ? AND state = ?"
            " AND upload_url IS NOT NULL ORDER BY id DESC LIMIT 1",
            (path, fingerprint, host, JobState.CANCELLED.value),
        ).fetchone()
        return JobRecord.from_row(row) if row else None

    def relative_unfinished(self) -> list[JobRecord]:
        """Unfinished jobs with a relative path (journaled by an older synapse-tui,
        relative to the folder it ran in, which the journal does not know)."""
        rows = self._db.execute(
            "SELECT * FROM jobs WHERE hex(substr(path, 1, 1)) != '2F' AND state IN"
            f" ({','.join('?' * len(UNFINISHED))})",
            [s.value for s in UNFINISHED],
        )
        return [JobRecord.from_row(r) for r in rows]

    def set_path(self, job_id: int, path: bytes) -> None:
        with self._tx(single=True) as db:
            db.execute(
                "UPDATE jobs SET path = ?, updated_at = ? WHERE id = ?", (path, time.time(), job_id)
            )

    def known_fingerprints(self, host: str, fingerprints: list[str]) -> set[str]:
        """Which of `fingerprints` the ledger, an unfinished job of `host` or a cancelled one
        with an upload has: one query for a scan batch instead of two per file (the others
        need no lookup)."""
        if not fingerprints:
            return set()
        marks = ",".join("?" * len(fingerprints))
        states = [s.value for s in UNFINISHED]
        rows = self._db.execute(
            f"SELECT fingerprint FROM ledger WHERE host = ? AND fingerprint IN ({marks})"
            " UNION SELECT fingerprint FROM jobs WHERE host = ? AND fingerprint IN"
            f" ({marks}) AND (state IN ({','.join('?' * len(states))})"
            " OR (state = ? AND upload_url IS NOT NULL))",
            (host, *fingerprints, host, *fingerprints, *states, JobState.CANCELLED.value),
        )
        return {r[0] for r in rows}

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
        """Set columns of one job in one transaction."""
        unknown = set(values) - self._UPDATABLE
        if unknown:
            raise ValueError(f"not updatable: {sorted(unknown)}")
        if "state" in values and isinstance(values["state"], JobState):
            values["state"] = values["state"].value
        if "extra" in values and not isinstance(values["extra"], str | None):
            values["extra"] = json.dumps(values["extra"])
        values["updated_at"] = time.time()
        cols = ", ".join(f"{k} = ?" for k in values)
        with self._tx(single=True) as db:
            db.execute(f"UPDATE jobs SET {cols} WHERE id = ?", (*values.values(), job_id))

    def mark_creating(self, job_ids: list[int], at: float) -> None:
        """Note that a new upload may be created for each of these jobs from `at` on (their
        `creating_since`), in one write."""
        marks = ",".join("?" * len(job_ids))
        with self._tx(single=True) as db:
            db.execute(
                f"UPDATE jobs SET creating_since = ?, updated_at = ? WHERE id IN ({marks})",
                (at, time.time(), *job_ids),
            )

    def add_error(self, job_id: int, message: str) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO job_errors (job_id, at, message) VALUES (?,?,?)",
                (job_id, time.time(), message),
            )
            db.execute(
                "UPDATE jobs SET last_error = ?, updated_at = ? WHERE id = ?",
                (message, time.time(), job_id),
            )

    def errors(self, job_id: int) -> list[tuple[float, str]]:
        rows = self._db.execute(
            "SELECT at, message FROM job_errors WHERE job_id = ? ORDER BY at", (job_id,)
        )
        return [(r["at"], r["message"]) for r in rows]

    def complete(
        self,
        job: JobRecord | JobKey,
        md5: str,
        upload_id: str,
        resumed_from: int,
        result: Any,
        state: JobState = JobState.DONE,
        extra: dict[str, Any] | None = None,
        *,
        lazy: bool = False,
    ) -> None:
        """Mark a job uploaded and add it to the ledger, in one transaction (`lazy`: see the
        module's docstring)."""
        now = time.time()
        with self._tx(lazy) as db:
            db.execute(
                "UPDATE jobs SET state = ?, md5 = ?, upload_id = ?, offset = size,"
                " resumed_from = ?, result = ?, extra = ?, creating_since = NULL, updated_at = ?"
                " WHERE id = ?",
                (
                    state.value,
                    md5,
                    upload_id,
                    resumed_from,
                    json.dumps(result),
                    json.dumps(extra) if extra else None,
                    now,
                    job.id,
                ),
            )
            db.execute(
                "INSERT OR REPLACE INTO ledger VALUES (?,?,?,?,?,?,?)",
                (job.host, job.fingerprint, job.size, md5, upload_id, job.path, now),
            )

    def prune(self, states: tuple[JobState, ...]) -> tuple[int, int]:
        """Delete the jobs in `states`; (deleted, kept). Kept: jobs holding collection steps
        (`extra`), which a later run reads so that it never registers a file twice. The
        ledger of uploads is untouched: what was uploaded stays known."""
        marks = ",".join("?" * len(states))
        values = [s.value for s in states]
        with self._tx() as db:
            cur = db.execute(f"DELETE FROM jobs WHERE state IN ({marks}) AND extra IS NULL", values)
            db.execute("DELETE FROM job_errors WHERE job_id NOT IN (SELECT id FROM jobs)")
            (kept,) = db.execute(
                f"SELECT COUNT(*) FROM jobs WHERE state IN ({marks})", values
            ).fetchone()
        return cur.rowcount, kept

    def registered(self, host: str, fingerprint: str, collection: Any) -> Any | None:
        """The data unit id of this content in this collection, if a job registered it."""
        rows = self._db.execute(
            "SELECT extra FROM jobs WHERE host = ? AND fingerprint = ? AND state = ?"
            " AND extra IS NOT NULL",
            (host, fingerprint, JobState.DONE.value),
        )
        for row in rows:
            extra = json.loads(row["extra"])
            if extra.get("collection") == collection and extra.get("unit_id") is not None:
                return extra["unit_id"]
        return None

    def data_file_of(self, host: str, fingerprint: str, size: int) -> tuple[Any, str] | None:
        """(id, checksum) of the data file a job of this content got, if one did. A
        presigned upload's ledger entry names a file key, no chunked upload that
        `data_files/` could register: its data file is only known from here."""
        rows = self._db.execute(
            "SELECT extra FROM jobs WHERE host = ? AND fingerprint = ? AND size = ?"
            " AND extra IS NOT NULL",
            (host, fingerprint, size),
        )
        for row in rows:
            extra = json.loads(row["extra"])
            if extra.get("data_file_id") is not None and extra.get("checksum"):
                return extra["data_file_id"], str(extra["checksum"])
        return None

    # -- ledger -----------------------------------------------------------------------------

    def uploaded(self, host: str, fingerprint: str, size: int) -> LedgerEntry | None:
        row = self._db.execute(
            "SELECT * FROM ledger WHERE host = ? AND fingerprint = ? AND size = ?",
            (host, fingerprint, size),
        ).fetchone()
        if row is None:
            return None
        return LedgerEntry(
            row["host"],
            row["fingerprint"],
            row["size"],
            row["md5"],
            row["upload_id"],
            bytes(row["path"]),
            row["completed_at"],
        )

    def uploaded_paths(self, host: str) -> dict[bytes, LedgerEntry]:
        rows = self._db.execute("SELECT * FROM ledger WHERE host = ?", (host,))
        return {
            bytes(r["path"]): LedgerEntry(
                r["host"],
                r["fingerprint"],
                r["size"],
                r["md5"],
                r["upload_id"],
                bytes(r["path"]),
                r["completed_at"],
            )
            for r in rows
        }

    # -- locks ------------------------------------------------------------------------------

    def try_lock(self, job_id: int) -> bool:
        """Take this process's lock on a job; False if another process holds it.

        On Linux a job's lock is byte `job_id` of one file, taken with an open file
        description lock: it conflicts with any other open of the file (another process,
        or another Journal in this one), and it goes when the process does. Elsewhere each
        job has a lock file of its own, locked with flock (a file created per job: the
        cost that made this the first item of the small-files profile, and a folder that
        grew with every job ever run).
        """
        if job_id in self._held:
            if job_id in self._unlock_after_commit:
                self._unlock_after_commit.discard(job_id)  # taken again: keep it
            return True
        if self._use_ofd and _OFD_SETLK is not None:
            if self._lock_fd < 0:
                self._lock_fd = os.open(self.directory / "jobs.lock", _LOCK_FLAGS, 0o600)
            try:
                fcntl.fcntl(self._lock_fd, _OFD_SETLK, _flock(fcntl.F_WRLCK, job_id))
            except OSError as exc:
                if exc.errno in (errno.EAGAIN, errno.EACCES):
                    return False
                if exc.errno not in _UNSUPPORTED:
                    raise
                self._use_ofd = False  # an old kernel or a filesystem without them
            else:
                self._held[job_id] = -1
                return True
        locks = self.directory / "locks"
        locks.mkdir(mode=0o700, exist_ok=True)
        fd = os.open(locks / f"{job_id}.lock", _LOCK_FLAGS, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._held[job_id] = fd
        return True

    def unlock(self, job_id: int) -> None:
        """Release a job's lock; while lazy writes wait, once they are committed: another
        process that takes the lock must read what this one wrote under it (a job done
        here, re-read there as still queued, would be uploaded twice)."""
        if self._lazy_open and job_id in self._held:
            self._unlock_after_commit.add(job_id)
            return
        fd = self._held.pop(job_id, None)
        if fd == -1 and _OFD_SETLK is not None:
            fcntl.fcntl(self._lock_fd, _OFD_SETLK, _flock(fcntl.F_UNLCK, job_id))
        elif fd is not None:
            os.close(fd)
