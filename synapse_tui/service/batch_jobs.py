"""Which batch each job belongs to, kept in a TEMP table of the journal's connection."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from synapse_tui.engine.events import JobState
from synapse_tui.engine.session import delete_rows

# A TEMP table, like the manager's membership (engine/session.py): private to the engine
# process, gone with it, never a lock another process waits on, and paged to disk by SQLite
# past its cache, so a batch of a million files costs the router no Python object per file.
_SCHEMA = (
    "CREATE TEMP TABLE IF NOT EXISTS route_jobs (job INTEGER PRIMARY KEY,"
    " batch INTEGER NOT NULL, state TEXT NOT NULL, size INTEGER NOT NULL,"
    " sent INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS temp.route_jobs_batch ON route_jobs(batch, job)",
)
_TERMINAL = tuple(s.value for s in JobState if s.terminal)


@dataclass(frozen=True, slots=True)
class Member:
    """A job's row: its batch, and its state, size and bytes sent as of its last change."""

    batch: int
    state: JobState
    size: int
    sent: int


class BatchJobs:
    """The rows of every followed batch's jobs (one row per job: a job has one batch).

    The rows last read or written are also kept in memory (at most HOT, the oldest leave
    first), written through: a job's events come close together (its start, its states,
    its end), and each asked for its row, five SELECTs per small file on the engine's loop.
    """

    HOT = 1024  # rows kept in memory: well above the jobs in flight at any moment

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self._hot: dict[int, Member] = {}  # in the order they were last stored
        for statement in _SCHEMA:
            db.execute(statement)

    def get(self, job_id: int) -> Member | None:
        member = self._hot.get(job_id)
        if member is not None:
            return member
        row = self.db.execute(
            "SELECT batch, state, size, sent FROM temp.route_jobs WHERE job = ?", (job_id,)
        ).fetchone()
        if row is None:
            return None
        member = Member(int(row[0]), JobState(row[1]), int(row[2]), int(row[3]))
        self._keep(job_id, member)
        return member

    def put(self, job_id: int, member: Member) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO temp.route_jobs VALUES (?, ?, ?, ?, ?)",
            (job_id, member.batch, member.state.value, member.size, member.sent),
        )
        self._keep(job_id, member)  # only once the row holds it (a failed write raised)

    def move(self, job_id: int, state: JobState, sent: int) -> None:
        """A new state (and bytes sent) for a row: an UPDATE leaves the batch index alone."""
        self.db.execute(
            "UPDATE temp.route_jobs SET state = ?, sent = ? WHERE job = ?",
            (state.value, sent, job_id),
        )
        member = self._hot.get(job_id)
        if member is not None:
            self._keep(job_id, Member(member.batch, state, member.size, sent))

    def _keep(self, job_id: int, member: Member) -> None:
        self._hot.pop(job_id, None)
        self._hot[job_id] = member
        if len(self._hot) > self.HOT:
            del self._hot[next(iter(self._hot))]

    def unfinished(self, batch: int, after: int, limit: int) -> list[int]:
        """Job ids of `batch` above `after` whose last state is not final, by id."""
        marks = ",".join("?" * len(_TERMINAL))
        rows = self.db.execute(
            "SELECT job FROM temp.route_jobs INDEXED BY route_jobs_batch"
            f" WHERE batch = ? AND job > ? AND state NOT IN ({marks}) ORDER BY job LIMIT ?",
            (batch, after, *_TERMINAL, limit),
        )
        return [int(r[0]) for r in rows]

    def drop(self, batch: int) -> None:
        delete_rows(self.db, "DELETE FROM temp.route_jobs WHERE batch = ?", (batch,))
        for job_id in [j for j, m in self._hot.items() if m.batch == batch]:
            del self._hot[job_id]

    def count(self) -> int:
        (n,) = self.db.execute("SELECT COUNT(*) FROM temp.route_jobs").fetchone()
        return int(n)
