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

import contextlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synapse_tui.engine import journal_files
from synapse_tui.engine.errors import JournalFailed
from synapse_tui.engine.events import JobState
from synapse_tui.engine.hashing import Identity
from synapse_tui.engine.journal_locks import Fcntl, JobLocks, fcntl
from synapse_tui.engine.journal_writer import Unit, Writer
from synapse_tui.engine.steps import Id, JobSteps

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
CREATE INDEX IF NOT EXISTS ledger_path ON ledger(host, path);
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
    steps: JobSteps = field(default_factory=JobSteps)  # the `extra` column

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
            steps=JobSteps.from_json(json.loads(row["extra"]) if row["extra"] else None),
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


@dataclass(frozen=True)
class JobKey:
    """What `complete` needs of a job, for a caller that has it in memory."""

    id: int
    path: bytes
    size: int
    fingerprint: str
    host: str


@dataclass(frozen=True)
class NewJob:
    """A job to add: a file found by a scan (`upload_id`, `md5`: its earlier upload)."""

    path: bytes
    identity: Identity
    fingerprint: str
    host: str
    chunk_size: int
    priority: int = 0
    steps: JobSteps | None = None
    upload_id: str | None = None
    md5: str | None = None
    force: bool = False  # uploaded before or not: a new job (only one unfinished, still)


@dataclass(frozen=True)
class Added:
    """What `add_jobs` made of a NewJob: its new row; or, when another process wrote one
    since the caller looked (its scan raced ours), that process's unfinished row
    (`existing`), or the upload it finished (`uploaded`, its id; then `record` is None)."""

    spec: NewJob
    record: JobRecord | None
    existing: bool = False
    uploaded: str | None = None


def _steps_column(steps: JobSteps | None) -> str | None:
    """A job's steps as the `extra` column holds them: JSON, NULL when nothing is set."""
    data = steps.to_json() if steps is not None else None
    return json.dumps(data) if data else None


def _statement(sql: str, params: tuple[Any, ...]) -> Unit:
    """The unit of one statement."""
    return lambda db: db.execute(sql, params)


def _insert(specs: list[NewJob]) -> Unit:
    """The unit that adds `specs`, returning their rows as written (the columns left out
    take their schema defaults), without reading them back: one query fewer per file."""

    extras = [_steps_column(spec.steps) for spec in specs]  # as they are now

    unfinished = ",".join("?" * len(UNFINISHED))
    states = [state.value for state in UNFINISHED]

    def unit(db: sqlite3.Connection) -> list[Added]:
        out: list[Added] = []
        for spec, extra in zip(specs, extras, strict=True):
            ident = spec.identity
            # The caller looked on its own connection, outside this transaction: another
            # process may have added (or finished) the file since. Looked again here, under
            # the write lock, so two scans racing never make two jobs of one file.
            cur = db.execute(
                "SELECT * FROM jobs WHERE path = ? AND fingerprint = ? AND host = ? AND state"
                f" IN ({unfinished}) ORDER BY id DESC LIMIT 1",
                (spec.path, spec.fingerprint, spec.host, *states),
            )
            cur.row_factory = sqlite3.Row
            row = cur.fetchone()
            if row is not None:
                out.append(Added(spec, JobRecord.from_row(row), existing=True))
                continue
            if not spec.force and spec.upload_id is None:
                done = db.execute(
                    "SELECT upload_id FROM ledger WHERE host = ? AND fingerprint = ? AND size = ?",
                    (spec.host, spec.fingerprint, ident.size),
                ).fetchone()
                if done is not None:
                    out.append(Added(spec, None, uploaded=str(done[0])))
                    continue
            now = time.time()
            cur = db.execute(
                "INSERT INTO jobs (path, size, mtime_ns, inode, device, fingerprint, host,"
                " chunk_size, priority, state, extra, upload_id, md5, created_at, updated_at)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    spec.path,
                    ident.size,
                    ident.mtime_ns,
                    ident.inode,
                    ident.device,
                    spec.fingerprint,
                    spec.host,
                    spec.chunk_size,
                    spec.priority,
                    JobState.QUEUED.value,
                    extra,
                    spec.upload_id,
                    spec.md5,
                    now,
                    now,
                ),
            )
            assert cur.lastrowid is not None
            record = JobRecord(
                id=cur.lastrowid,
                path=spec.path,
                size=ident.size,
                identity=ident,
                fingerprint=spec.fingerprint,
                host=spec.host,
                chunk_size=spec.chunk_size,
                priority=spec.priority,
                state=JobState.QUEUED,
                upload_id=spec.upload_id,
                upload_url=None,
                creating_since=None,
                offset=0,
                attempts=0,
                last_error=None,
                md5=spec.md5,
                resumed_from=None,
                created_at=now,
                updated_at=now,
                steps=JobSteps.from_json(json.loads(extra) if extra else None),
            )
            out.append(Added(spec, record))
        return out

    return unit


def _prune(states: tuple[JobState, ...]) -> Unit:
    """The unit of `Journal.prune`: (deleted, kept)."""
    marks = ",".join("?" * len(states))
    values = [s.value for s in states]

    def unit(db: sqlite3.Connection) -> tuple[int, int]:
        cur = db.execute(f"DELETE FROM jobs WHERE state IN ({marks}) AND extra IS NULL", values)
        db.execute("DELETE FROM job_errors WHERE job_id NOT IN (SELECT id FROM jobs)")
        (kept,) = db.execute(
            f"SELECT COUNT(*) FROM jobs WHERE state IN ({marks})", values
        ).fetchone()
        return cur.rowcount, int(kept)

    return unit


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
            self._setup(self._db)
            self._db.row_factory = sqlite3.Row
        except (sqlite3.Error, OSError) as exc:
            self._w.close()
            raise journal_files.unusable(self.path, exc) from None
        self._checkpointer = _Checkpointer(self.path)
        self._commits = 0
        self._locks = JobLocks(directory, fcntl_call)
        self._locks_mutex = threading.Lock()  # the writer's thread releases locks too
        self._unlocking: dict[int, int] = {}  # job id -> its release's number
        self._unlocks = 0
        self._writer = Writer(self._w, lambda: self._tx(), self._committed)

    def _open(self) -> None:
        """Set the writer's connection up and make the tables: the first reads of the file,
        where SQLite finds a damaged one."""
        self._wal()
        self._setup(self._w)
        for statement in SCHEMA.split(";"):
            if statement.strip():
                self._w.execute(statement)
        for suffix in ("-wal", "-shm"):
            extra = Path(str(self.path) + suffix)
            if extra.exists():
                os.chmod(extra, 0o600)
        journal_files.note_initialised(self.path)

    def _setup(self, db: sqlite3.Connection) -> None:
        # NORMAL in WAL mode survives any process crash; only an OS crash may lose the last
        # commits, and the server's offset is re-read on resume anyway.
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA busy_timeout=30000")
        # Checkpoints run on their own thread (see _Checkpointer); a connection does one
        # itself only if the WAL outgrew 64 MiB all the same.
        db.execute(f"PRAGMA wal_autocheckpoint={self.BACKSTOP_PAGES}")

    def _wal(self, patience: float = 30.0) -> None:
        """Switch to WAL. Two processes opening a new journal at once: the switch of one
        meets the other's lock and SQLite answers "database is locked" at once, without
        its busy handler, so it is tried again here for as long as busy_timeout waits."""
        deadline = time.monotonic() + patience
        delay = 0.005
        while True:
            try:
                self._w.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise
            time.sleep(delay)
            delay = min(0.1, delay * 2)

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
        added: list[Added] = self.call(_insert([spec]))
        assert added[0].record is not None
        return added[0].record

    async def add_jobs(self, specs: list[NewJob]) -> list[Added]:
        """Add queued jobs in one write; their rows, once committed (the loop goes on)."""
        if not specs:
            return []
        added: list[Added] = await self.call_async(_insert(specs))
        return added

    def get(self, job_id: int, *, wait: bool = True) -> JobRecord:
        """A job's row; `wait=False`: as committed, for a caller whose own writes to this
        row are all committed already (see ownership.claim)."""
        db = self._read() if wait else self._db
        row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise KeyError(job_id)
        return JobRecord.from_row(row)

    def jobs(self, states: tuple[JobState, ...] | None = None) -> list[JobRecord]:
        if states:
            marks = ",".join("?" * len(states))
            rows = self._read().execute(
                f"SELECT * FROM jobs WHERE state IN ({marks}) ORDER BY priority DESC, id",
                [s.value for s in states],
            )
        else:
            rows = self._read().execute("SELECT * FROM jobs ORDER BY id")
        return [JobRecord.from_row(r) for r in rows]

    def unfinished(self, host: str | None = None) -> list[JobRecord]:
        jobs = self.jobs(UNFINISHED)
        return [j for j in jobs if host is None or j.host == host]

    def unfinished_pages(
        self, host: str, page: int = 500, *, wait: bool = True
    ) -> Iterator[JobRecord]:
        """The unfinished jobs of `host`, state by state and by id, a page at a time from
        the state index: recovery never reads the whole table at once (`wait=False`: each
        page as committed)."""
        for state in UNFINISHED:
            after = 0
            while True:
                rows = (
                    (self._read() if wait else self._db)
                    .execute(
                        "SELECT * FROM jobs INDEXED BY jobs_state WHERE state = ? AND id > ?"
                        " ORDER BY id LIMIT ?",
                        (state.value, after, page),
                    )
                    .fetchall()
                )
                for row in rows:
                    if row["host"] == host:
                        yield JobRecord.from_row(row)
                if len(rows) < page:
                    break
                after = rows[-1]["id"]

    def count_unfinished(self, host: str) -> int:
        marks = ",".join("?" * len(UNFINISHED))
        (n,) = (
            self._read()
            .execute(
                f"SELECT COUNT(*) FROM jobs WHERE host = ? AND state IN ({marks})",
                (host, *[s.value for s in UNFINISHED]),
            )
            .fetchone()
        )
        return int(n)

    def known_upload_ids(self, upload_ids: list[str]) -> set[str]:
        """Which of `upload_ids` a job of this journal holds (by index, a few at a time)."""
        known: set[str] = set()
        for start in range(0, len(upload_ids), 500):
            part = upload_ids[start : start + 500]
            rows = self._read().execute(
                f"SELECT upload_id FROM jobs WHERE upload_id IN ({','.join('?' * len(part))})",
                part,
            )
            known.update(r[0] for r in rows)
        return known

    def find_unfinished(self, path: bytes, fingerprint: str, host: str) -> JobRecord | None:
        row = (
            self._read()
            .execute(
                "SELECT * FROM jobs WHERE path = ? AND fingerprint = ? AND host = ? AND state IN"
                f" ({','.join('?' * len(UNFINISHED))}) ORDER BY id DESC LIMIT 1",
                (path, fingerprint, host, *[s.value for s in UNFINISHED]),
            )
            .fetchone()
        )
        return JobRecord.from_row(row) if row else None

    def find_cancelled(self, path: bytes, fingerprint: str, host: str) -> JobRecord | None:
        """The last cancelled job of this file that left an upload on the server (queued
        again, it resumes that upload instead of orphaning it)."""
        row = (
            self._read()
            .execute(
                "SELECT * FROM jobs WHERE path = ? AND fingerprint = ? AND host = ? AND state = ?"
                " AND upload_url IS NOT NULL ORDER BY id DESC LIMIT 1",
                (path, fingerprint, host, JobState.CANCELLED.value),
            )
            .fetchone()
        )
        return JobRecord.from_row(row) if row else None

    def relative_unfinished(self) -> list[JobRecord]:
        """Unfinished jobs with a relative path (journaled by an older synapse-tui,
        relative to the folder it ran in, which the journal does not know)."""
        rows = self._read().execute(
            "SELECT * FROM jobs WHERE hex(substr(path, 1, 1)) != '2F' AND state IN"
            f" ({','.join('?' * len(UNFINISHED))})",
            [s.value for s in UNFINISHED],
        )
        return [JobRecord.from_row(r) for r in rows]

    def set_path(self, job_id: int, path: bytes) -> None:
        self.write(
            _statement(
                "UPDATE jobs SET path = ?, updated_at = ? WHERE id = ?", (path, time.time(), job_id)
            )
        )

    def known_fingerprints(self, host: str, fingerprints: list[str]) -> set[str]:
        """Which of `fingerprints` the ledger, an unfinished job of `host` or a cancelled one
        with an upload has: one query for a scan batch instead of two per file (the others
        need no lookup)."""
        if not fingerprints:
            return set()
        marks = ",".join("?" * len(fingerprints))
        states = [s.value for s in UNFINISHED]
        rows = self._read().execute(
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
        self.write(_statement(f"UPDATE jobs SET {cols} WHERE id = ?", (*values.values(), job_id)))

    def mark_creating(self, job_ids: list[int], at: float) -> None:
        """Note that a new upload may be created for each of these jobs from `at` on (their
        `creating_since`), in one write."""
        marks = ",".join("?" * len(job_ids))
        self.write(
            _statement(
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

    def errors(self, job_id: int, *, wait: bool = True) -> list[tuple[float, str]]:
        """A job's errors, oldest first; `wait=False`: as committed (see `uploaded`)."""
        rows = (self._read() if wait else self._db).execute(
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
            _steps_column(steps),
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
        counts: tuple[int, int] = self.call(_prune(states))
        return counts

    async def prune_async(self, states: tuple[JobState, ...]) -> tuple[int, int]:
        """`prune` on the engine's loop: the loop goes on while the writer deletes (and
        waits for another process's lock)."""
        counts: tuple[int, int] = await self.call_async(_prune(states))
        return counts

    def registered(self, host: str, fingerprint: str, collection: int) -> Id | None:
        """The data unit id of this content in this collection, if a job registered it."""
        rows = self._read().execute(
            "SELECT extra FROM jobs WHERE host = ? AND fingerprint = ? AND state = ?"
            " AND extra IS NOT NULL",
            (host, fingerprint, JobState.DONE.value),
        )
        for row in rows:
            steps = JobSteps.from_json(json.loads(row["extra"]))
            if steps.collection == collection and steps.unit_id is not None:
                return steps.unit_id
        return None

    def data_file_of(self, host: str, fingerprint: str, size: int) -> tuple[Id, str] | None:
        """(id, checksum) of the data file a job of this content got, if one did. A
        presigned upload's ledger entry names a file key, no chunked upload that
        `data_files/` could register: its data file is only known from here."""
        rows = self._read().execute(
            "SELECT extra FROM jobs WHERE host = ? AND fingerprint = ? AND size = ?"
            " AND extra IS NOT NULL",
            (host, fingerprint, size),
        )
        for row in rows:
            steps = JobSteps.from_json(json.loads(row["extra"]))
            if steps.data_file_id is not None and steps.checksum:
                return steps.data_file_id, steps.checksum
        return None

    # -- ledger -----------------------------------------------------------------------------

    def uploaded(
        self, host: str, fingerprint: str, size: int, *, wait: bool = True
    ) -> LedgerEntry | None:
        """The ledger's entry for this content; `wait=False`: as committed, without waiting
        (blocking) for this process's writes in waiting (see `get`)."""
        db = self._read() if wait else self._db
        row = db.execute(
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

    def uploaded_among(self, host: str, paths: Sequence[bytes]) -> set[bytes]:
        """Which of `paths` the ledger knows as uploaded to `host` (by index: the cost of
        `paths`, not of the ledger)."""
        return uploaded_among(self._read(), host, paths)

    def uploaded_paths(self, host: str) -> dict[bytes, LedgerEntry]:
        rows = self._read().execute("SELECT * FROM ledger WHERE host = ?", (host,))
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


def uploaded_among(db: sqlite3.Connection, host: str, paths: Sequence[bytes]) -> set[bytes]:
    """`Journal.uploaded_among` on any connection to a journal (a front end's read-only one)."""
    found: set[bytes] = set()
    wanted = list(dict.fromkeys(paths))
    for start in range(0, len(wanted), 500):  # host parameters per query, far below the limit
        part = wanted[start : start + 500]
        marks = ",".join("?" * len(part))
        rows = db.execute(
            f"SELECT path FROM ledger WHERE host = ? AND path IN ({marks})", (host, *part)
        )
        found.update(bytes(r[0]) for r in rows)
    return found
