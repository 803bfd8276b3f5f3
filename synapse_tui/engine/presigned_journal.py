"""The journal's tables of presigned uploads: each job's file key, URLs and finished parts.

Presigned URLs are credentials for their objects: they live only here, in the journal's
0600 database, and go when the job is done (or its row is pruned). A part's ETag is written
as the part finishes, so a resume after a crash or `kill -9` sends only the parts that lack
one; a cancelled job keeps its grant too, so that the same file queued again in a later
session goes on with the same key and multipart upload (`find_cancelled`).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from dataclasses import dataclass, field

from synapse_tui.engine.events import JobState
from synapse_tui.engine.journal import UNFINISHED, JobRecord, Journal

# The jobs whose grant is kept: those that may still upload, and the cancelled ones (queued
# again, they resume their upload: the chunked path does so with its upload URL).
KEPT = (*UNFINISHED, JobState.CANCELLED)

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS presigned_files (
    job_id INTEGER PRIMARY KEY,
    file_key TEXT NOT NULL,
    url TEXT,
    upload_id TEXT,
    part_size INTEGER,
    expires_at REAL NOT NULL,
    created_at REAL NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS presigned_parts (
    job_id INTEGER NOT NULL,
    part_number INTEGER NOT NULL,
    url TEXT NOT NULL,
    etag TEXT,
    PRIMARY KEY (job_id, part_number)
)""",
)


@dataclass
class Part:
    url: str
    etag: str | None = None


@dataclass
class Grant:
    """What the backend handed out for one file: a single PUT URL, or a multipart upload."""

    file_key: str
    expires_at: float
    url: str | None = None
    upload_id: str | None = None
    part_size: int | None = None
    parts: dict[int, Part] = field(default_factory=dict)

    @property
    def multipart(self) -> bool:
        return self.upload_id is not None

    def __repr__(self) -> str:  # never the URLs
        return f"Grant({self.file_key!r}, multipart={self.multipart}, parts={len(self.parts)})"


class PresignedJournal:
    """Reads and writes of the two tables: writes are units of the journal's writer, reads
    follow `Journal.settled`; none waits for the journal on the engine's loop. `open` is
    awaited before anything else."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        # The jobs that have a grant, kept in memory: most jobs never have one (chunked
        # uploads), and a lookup per file would cost them a query each.
        self._jobs: set[int] = set()
        self._opening: asyncio.Task[None] | None = None
        self._open = False

    async def open(self) -> None:
        """Make the tables and drop stale grants, once (a write: it may wait for another
        process's lock, off the loop)."""
        if self._open:
            return
        if self._opening is None:
            self._opening = asyncio.get_running_loop().create_task(self._set_up())
        await asyncio.shield(self._opening)

    async def _set_up(self) -> None:
        jobs: set[int] = await self.journal.call_async(_set_up)
        self._jobs.update(jobs)
        self._open = True

    def save(self, grants: dict[int, Grant]) -> None:
        """Record the grants of a batch in one write (replacing any older one of a job)."""
        now = time.time()
        self._jobs.update(grants)
        rows = [
            (job_id, (job_id, g.file_key, g.url, g.upload_id, g.part_size, g.expires_at, now))
            for job_id, g in grants.items()
        ]
        parts = [
            [(job_id, n, p.url, p.etag) for n, p in g.parts.items()] for job_id, g in grants.items()
        ]

        def unit(db: sqlite3.Connection) -> None:
            for (job_id, row), its_parts in zip(rows, parts, strict=True):
                db.execute("DELETE FROM presigned_parts WHERE job_id = ?", (job_id,))
                db.execute("INSERT OR REPLACE INTO presigned_files VALUES (?,?,?,?,?,?,?)", row)
                db.executemany("INSERT INTO presigned_parts VALUES (?,?,?,?)", its_parts)

        self.journal.write(unit)

    async def load(self, job_id: int) -> Grant | None:
        if job_id not in self._jobs:
            return None
        await self.journal.settled()  # the reads below wait for nothing
        db = self.journal.connection
        row = db.execute(
            "SELECT file_key, url, upload_id, part_size, expires_at FROM presigned_files"
            " WHERE job_id = ?",
            (job_id,),
        ).fetchone()
        if row is None:
            return None
        grant = Grant(row[0], row[4], url=row[1], upload_id=row[2], part_size=row[3])
        for n, url, etag in db.execute(
            "SELECT part_number, url, etag FROM presigned_parts WHERE job_id = ?", (job_id,)
        ):
            grant.parts[int(n)] = Part(url, etag)
        return grant

    def has(self, job_id: int) -> bool:
        return job_id in self._jobs

    def part_done(self, job_id: int, number: int, etag: str) -> None:
        self.journal.write(
            lambda db: db.execute(
                "UPDATE presigned_parts SET etag = ? WHERE job_id = ? AND part_number = ?",
                (etag, job_id, number),
            )
        )

    def renewed(self, job_id: int, grant: Grant) -> None:
        """Fresh URLs (same key, same multipart upload) after the old ones expired."""
        url, expires_at = grant.url, grant.expires_at
        parts = [(p.url, job_id, n) for n, p in grant.parts.items()]

        def unit(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE presigned_files SET url = ?, expires_at = ? WHERE job_id = ?",
                (url, expires_at, job_id),
            )
            db.executemany(
                "UPDATE presigned_parts SET url = ? WHERE job_id = ? AND part_number = ?", parts
            )

        self.journal.write(unit)

    def forget(self, job_id: int, *, lazy: bool = False) -> None:
        """Drop a job's grant (done, or starting again); `lazy`: requests need not wait."""
        self._jobs.discard(job_id)

        def unit(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM presigned_parts WHERE job_id = ?", (job_id,))
            db.execute("DELETE FROM presigned_files WHERE job_id = ?", (job_id,))

        self.journal.write(unit, durable=not lazy)


def _set_up(db: sqlite3.Connection) -> set[int]:
    """Make the tables, drop stale grants; the jobs that have one."""
    for statement in SCHEMA:
        db.execute(statement)
    # Grants of jobs that ended otherwise (done, failed, pruned): their URLs are
    # credentials and no use any more.
    states = [s.value for s in KEPT]
    marks = ",".join("?" * len(states))
    for table in ("presigned_parts", "presigned_files"):
        db.execute(
            f"DELETE FROM {table} WHERE job_id NOT IN"
            f" (SELECT id FROM jobs WHERE state IN ({marks}))",
            states,
        )
    return {int(r[0]) for r in db.execute("SELECT job_id FROM presigned_files")}


def find_cancelled(journal: Journal, path: bytes, fingerprint: str, host: str) -> JobRecord | None:
    """The last cancelled job of this file with a presigned grant (its key, its multipart
    upload and the ETags of the parts it sent), to resume when the file is queued again.
    Reads as committed: the caller awaited `journal.settled()` (a scan does per batch)."""
    try:
        row = journal.connection.execute(
            "SELECT jobs.* FROM jobs JOIN presigned_files ON presigned_files.job_id = jobs.id"
            " WHERE path = ? AND fingerprint = ? AND host = ? AND state = ?"
            " ORDER BY jobs.id DESC LIMIT 1",
            (path, fingerprint, host, JobState.CANCELLED.value),
        ).fetchone()
    except sqlite3.OperationalError:  # no presigned upload ever: no such table yet
        return None
    return JobRecord.from_row(row) if row else None


def any_cancelled(journal: Journal) -> bool:
    """Whether some cancelled job kept a grant (a scan then looks its files up). Reads as
    committed: await `journal.settled()` first."""
    try:
        row = journal.connection.execute(
            "SELECT 1 FROM presigned_files CROSS JOIN jobs ON jobs.id = presigned_files.job_id"
            " WHERE jobs.state = ? LIMIT 1",
            (JobState.CANCELLED.value,),
        ).fetchone()
    except sqlite3.OperationalError:  # no presigned upload ever: no such table yet
        return False
    return row is not None


def cancelled_fingerprints(journal: Journal, host: str, fingerprints: list[str]) -> set[str]:
    """Which of `fingerprints` a cancelled job with a grant has (walked from the grants:
    few rows, those of jobs that may still upload or were cancelled)."""
    if not fingerprints:
        return set()
    marks = ",".join("?" * len(fingerprints))
    try:
        rows = journal.connection.execute(
            "SELECT jobs.fingerprint FROM presigned_files CROSS JOIN jobs"
            " ON jobs.id = presigned_files.job_id WHERE jobs.state = ? AND jobs.host = ?"
            f" AND jobs.fingerprint IN ({marks})",
            (JobState.CANCELLED.value, host, *fingerprints),
        )
        return {str(r[0]) for r in rows}
    except sqlite3.OperationalError:
        return set()
