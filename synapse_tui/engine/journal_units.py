"""Units of the journal's writer (functions of its connection) of more than one statement."""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

from synapse_tui.engine.events import JobState
from synapse_tui.engine.journal_rows import UNFINISHED, Added, JobRecord, NewJob, steps_column
from synapse_tui.engine.journal_writer import Unit
from synapse_tui.engine.steps import JobSteps


def statement(sql: str, params: tuple[Any, ...]) -> Unit:
    """The unit of one statement."""
    return lambda db: db.execute(sql, params)


def insert(specs: list[NewJob]) -> Unit:
    """The unit that adds `specs`, returning their rows as written (the columns left out
    take their schema defaults), without reading them back: one query fewer per file."""

    extras = [steps_column(spec.steps) for spec in specs]  # as they are now

    unfinished = ",".join("?" * len(UNFINISHED))
    states = [state.value for state in UNFINISHED]

    def unit(db: sqlite3.Connection) -> list[Added]:
        out: list[Added] = []
        first_id = _first_id(db)
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
                "INSERT INTO jobs (id, path, size, mtime_ns, inode, device, fingerprint, host,"
                " chunk_size, priority, state, extra, upload_id, md5, created_at, updated_at)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    first_id,  # None: SQLite's own (one above the highest)
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
            first_id = None  # the rows after it are above it
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


def revive(job_ids: list[int]) -> Unit:
    """The unit that queues cancelled jobs again: the ids whose row it changed. The update
    is the check: a row another process pruned (even one whose prune commits while this
    waits for the write lock) is not there to change, and its job becomes a new one, under
    another id (the engine holds the old one in memory)."""

    def unit(db: sqlite3.Connection) -> set[int]:
        now = time.time()
        kept: set[int] = set()
        for job_id in job_ids:
            cur = db.execute(
                "UPDATE jobs SET state = ?, updated_at = ? WHERE id = ?",
                (JobState.QUEUED.value, now, job_id),
            )
            if cur.rowcount:
                kept.add(job_id)
            else:  # never given again: SQLite would give the top id to the next new job
                _raise_id_floor(db, job_id)
        return kept

    return unit


def _raise_id_floor(db: sqlite3.Connection, job_id: int) -> None:
    """No new job takes an id up to `job_id` (`_first_id`)."""
    db.execute(
        "INSERT INTO job_id_floor (one, id) VALUES (1, ?)"
        " ON CONFLICT(one) DO UPDATE SET id = MAX(id, excluded.id)",
        (job_id,),
    )


def _first_id(db: sqlite3.Connection) -> int | None:
    """The id of the next new job when SQLite's own would be one a pruned job had (it
    takes one above the highest id left): None when it would not."""
    floor = db.execute("SELECT id FROM job_id_floor").fetchone()
    if floor is None:
        return None
    (top,) = db.execute("SELECT MAX(id) FROM jobs").fetchone()
    return int(floor[0]) + 1 if top is None or top < floor[0] else None


_GRANT_TABLES = ("presigned_parts", "presigned_files")
_TABLE_EXISTS = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"


def prune(states: tuple[JobState, ...]) -> Unit:
    """The unit of `Journal.prune`: (deleted, kept)."""
    marks = ",".join("?" * len(states))
    values = [s.value for s in states]

    def unit(db: sqlite3.Connection) -> tuple[int, int]:
        # A job id is never given twice: what keys on it (a presigned grant, the engine's
        # jobs and session in memory) would take the new job for the pruned one.
        (top,) = db.execute("SELECT MAX(id) FROM jobs").fetchone()
        if top is not None:
            _raise_id_floor(db, top)
        cur = db.execute(f"DELETE FROM jobs WHERE state IN ({marks}) AND extra IS NULL", values)
        db.execute("DELETE FROM job_errors WHERE job_id NOT IN (SELECT id FROM jobs)")
        # Presigned grants (engine/presigned_journal) go with their rows: their URLs are
        # credentials, and SQLite gives the highest deleted id to the next job, which would
        # take a kept grant for its own (another file's key, multipart upload and ETags).
        for table in _GRANT_TABLES:
            if db.execute(_TABLE_EXISTS, (table,)).fetchone() is not None:
                db.execute(f"DELETE FROM {table} WHERE job_id NOT IN (SELECT id FROM jobs)")
        (kept,) = db.execute(
            f"SELECT COUNT(*) FROM jobs WHERE state IN ({marks})", values
        ).fetchone()
        return cur.rowcount, int(kept)

    return unit
