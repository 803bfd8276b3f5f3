"""The jobs of one UploadManager, kept in the journal: membership, queue pages, windows."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterable, Iterator

from synapse_tui.engine.events import JobState
from synapse_tui.engine.journal import JobRecord, Journal
from synapse_tui.engine.seen_index import SeenIndex, SeenKey, delete_rows

# Membership and the scan's duplicate index (engine/seen_index.py) live in TEMP tables of
# the journal's connection: they belong to this process only (gone with it, never written
# to the shared file, never a lock another process waits on) and SQLite keeps them on disk
# past its page cache, so a million members cost the engine no Python object each.
_TEMP_SCHEMA = (
    "CREATE TEMP TABLE IF NOT EXISTS session_jobs"
    " (tag INTEGER NOT NULL, id INTEGER NOT NULL, PRIMARY KEY (tag, id)) WITHOUT ROWID",
)
_TAGS = itertools.count(1)  # several managers may share one journal connection
_MEMBER = "EXISTS (SELECT 1 FROM temp.session_jobs s WHERE s.tag = ? AND s.id = j.id)"

__all__ = ["SeenKey", "Session", "delete_rows"]


class Session:
    """Which journal rows belong to one manager, and the index queries it answers from."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.db: sqlite3.Connection = journal.connection
        self.tag = next(_TAGS)
        self.db.execute("PRAGMA temp.journal_mode=MEMORY")
        for statement in _TEMP_SCHEMA:
            self.db.execute(statement)
        self.scans = SeenIndex(self.db)

    # -- membership -------------------------------------------------------------------------

    def add(self, job_id: int) -> bool:
        """Make `job_id` a member; False if it already was."""
        cur = self.db.execute(
            "INSERT OR IGNORE INTO temp.session_jobs VALUES (?, ?)", (self.tag, job_id)
        )
        return cur.rowcount > 0

    def has(self, job_id: int) -> bool:
        row = self.db.execute(
            "SELECT 1 FROM temp.session_jobs WHERE tag = ? AND id = ?", (self.tag, job_id)
        ).fetchone()
        return row is not None

    def size(self) -> int:
        (n,) = self.db.execute(
            "SELECT COUNT(*) FROM temp.session_jobs WHERE tag = ?", (self.tag,)
        ).fetchone()
        return int(n)

    # -- queries by index -------------------------------------------------------------------

    def queued(self, limit: int) -> list[JobRecord]:
        """The first `limit` queued members by (priority desc, id): the `jobs_queue` index
        read in order, stopping after `limit` rows (never a sort of the queue)."""
        self.journal.catch_up()  # the rows as this process wrote them
        rows = self.db.execute(
            "SELECT * FROM jobs j INDEXED BY jobs_queue WHERE j.state = ?"
            f" AND {_MEMBER} ORDER BY j.priority DESC, j.id LIMIT ?",
            (JobState.QUEUED.value, self.tag, limit),
        )
        return [JobRecord.from_row(r) for r in rows]

    def in_state(
        self, state: JobState, after: int = 0, limit: int = 500, *, wait: bool = True
    ) -> list[JobRecord]:
        """Members in `state` with an id above `after`, by id: one page of the state index
        (`wait=False`: as committed, for a caller whose writes in waiting do not matter)."""
        if wait:
            self.journal.catch_up()
        rows = self.db.execute(
            "SELECT * FROM jobs j INDEXED BY jobs_state WHERE j.state = ? AND j.id > ?"
            f" AND {_MEMBER} ORDER BY j.id LIMIT ?",
            (state.value, after, self.tag, limit),
        )
        return [JobRecord.from_row(r) for r in rows]

    def each(self, state: JobState, page: int = 500) -> Iterator[JobRecord]:
        """Every member in `state`, a page at a time (rows may change state meanwhile)."""
        after = 0
        while True:
            recs = self.in_state(state, after, page)
            yield from recs
            if len(recs) < page:
                return
            after = recs[-1].id

    def window(self, offset: int, limit: int, state: JobState | None = None) -> list[JobRecord]:
        """Members by id from `offset`: the membership index (or the state index) in order."""
        self.journal.catch_up()
        if state is None:
            rows = self.db.execute(
                "SELECT j.* FROM temp.session_jobs s JOIN jobs j ON j.id = s.id"
                " WHERE s.tag = ? ORDER BY s.id LIMIT ? OFFSET ?",
                (self.tag, limit, offset),
            )
        else:
            rows = self.db.execute(
                "SELECT * FROM jobs j INDEXED BY jobs_state WHERE j.state = ?"
                f" AND {_MEMBER} ORDER BY j.id LIMIT ? OFFSET ?",
                (state.value, self.tag, limit, offset),
            )
        return [JobRecord.from_row(r) for r in rows]

    def get(self, job_id: int, *, wait: bool = True) -> JobRecord | None:
        if wait:
            self.journal.catch_up()
        row = self.db.execute(
            f"SELECT * FROM jobs j WHERE j.id = ? AND {_MEMBER}", (job_id, self.tag)
        ).fetchone()
        return JobRecord.from_row(row) if row is not None else None

    def same_content(
        self, fingerprint: str, size: int, exclude: int, limit: int = 8
    ) -> list[JobRecord]:
        """Members with this content other than `exclude` and not twins themselves (a twin's
        original), those with a data file first, then the unfinished, then by id: the
        fingerprint index, read as committed (the caller awaited `Journal.settled`)."""
        rows = self.db.execute(
            "SELECT * FROM jobs j INDEXED BY jobs_fingerprint WHERE j.fingerprint = ?"
            f" AND j.size = ? AND j.id != ? AND {_MEMBER}"
            " AND coalesce(json_extract(j.extra, '$.twin'), 0) = 0"
            " ORDER BY json_extract(j.extra, '$.data_file_id') IS NULL,"
            " j.state IN ('done', 'skipped', 'failed', 'cancelled'), j.id LIMIT ?",
            (fingerprint, size, exclude, self.tag, limit),
        )
        return [JobRecord.from_row(r) for r in rows]

    def rows(self, job_ids: list[int]) -> dict[int, JobRecord]:
        """The rows of these members, read as committed (at most a page of ids)."""
        marks = ",".join("?" * len(job_ids))
        rows = self.db.execute(
            f"SELECT * FROM jobs j WHERE j.id IN ({marks}) AND {_MEMBER}", (*job_ids, self.tag)
        )
        return {rec.id: rec for rec in map(JobRecord.from_row, rows)}

    # -- the scan's duplicates --------------------------------------------------------------

    def new_scan(self) -> int:
        return self.scans.new_scan()

    def seen(self, scan: int, keys: Iterable[SeenKey]) -> dict[SeenKey, str]:
        """Which of `keys` this scan met before, with the display path met first."""
        return self.scans.seen(scan, keys)

    def note_seen(self, scan: int, entries: dict[SeenKey, str]) -> None:
        self.scans.note(scan, entries)

    def end_scan(self, scan: int) -> None:
        self.scans.end(scan)
