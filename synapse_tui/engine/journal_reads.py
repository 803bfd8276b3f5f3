"""The journal's read queries, on the reading connection (see Journal's read discipline)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence

from synapse_tui.engine.events import JobState
from synapse_tui.engine.journal_rows import UNFINISHED, JobRecord, LedgerEntry
from synapse_tui.engine.steps import Id, JobSteps


class JournalReads:
    """The reads of `Journal` (its base): `_read()` waits for this process's writes first,
    `_db` reads as committed."""

    _db: sqlite3.Connection

    def _read(self) -> sqlite3.Connection:
        raise NotImplementedError

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

    def errors(self, job_id: int, *, wait: bool = True) -> list[tuple[float, str]]:
        """A job's errors, oldest first; `wait=False`: as committed (see `uploaded`)."""
        rows = (self._read() if wait else self._db).execute(
            "SELECT at, message FROM job_errors WHERE job_id = ? ORDER BY at", (job_id,)
        )
        return [(r["at"], r["message"]) for r in rows]

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

    def units_recorded(
        self, host: str, fingerprint: str, size: int, unit_ids: Sequence[Id]
    ) -> dict[Id, set[int]]:
        """Which of `unit_ids` (a page of the server's units) jobs of this content record,
        and which jobs, as committed: one read for the page, not one per unit. Equal files
        under an equal stem make units the server cannot tell apart: a unit looked for
        after a lost answer is never one given another group."""
        found: dict[Id, set[int]] = {}
        wanted = list(dict.fromkeys(unit_ids))
        for start in range(0, len(wanted), 500):  # host parameters per query, far below the limit
            part = wanted[start : start + 500]
            marks = ",".join("?" * len(part))
            rows = self._db.execute(
                "SELECT id, json_extract(extra, '$.unit_id') FROM jobs"
                " WHERE host = ? AND fingerprint = ? AND size = ?"
                f" AND json_extract(extra, '$.unit_id') IN ({marks})",
                (host, fingerprint, size, *part),
            )
            for job_id, unit_id in rows:
                found.setdefault(unit_id, set()).add(job_id)
        return found

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

    def uploads_of(
        self, host: str, keys: Sequence[tuple[int, str]], *, wait: bool = True
    ) -> dict[tuple[int, str], str]:
        """The ledger's upload id of each of `keys` (size, fingerprint) it has: one query
        for a scan batch instead of one per file; `wait=False`: as committed."""
        db = self._read() if wait else self._db
        found: dict[tuple[int, str], str] = {}
        wanted = list(dict.fromkeys(keys))
        for start in range(0, len(wanted), 250):  # 3 host parameters a key, far below the limit
            part = wanted[start : start + 250]
            marks = ",".join("(?,?)" for _ in part)
            rows = db.execute(  # a join: a lookup by the whole primary key each
                f"WITH k(size, fingerprint) AS (VALUES {marks}) SELECT l.size, l.fingerprint,"
                " l.upload_id FROM k JOIN ledger l ON l.host = ?"
                " AND l.fingerprint = k.fingerprint AND l.size = k.size",
                (*[v for key in part for v in key], host),
            )
            for size, fingerprint, upload_id in rows:
                found[(size, fingerprint)] = upload_id
        return found

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
