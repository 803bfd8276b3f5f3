"""The journal's schema and its row types: a job's row, a ledger entry, a job to add."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field

from synapse_tui.engine.events import JobState
from synapse_tui.engine.hashing import Identity
from synapse_tui.engine.steps import JobSteps

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
CREATE TABLE IF NOT EXISTS job_id_floor (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    id INTEGER NOT NULL
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


def steps_column(steps: JobSteps | None) -> str | None:
    """A job's steps as the `extra` column holds them: JSON, NULL when nothing is set."""
    data = steps.to_json() if steps is not None else None
    return json.dumps(data) if data else None
