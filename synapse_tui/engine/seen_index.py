"""A scan's duplicate index in SQLite TEMP tables: read and written once per batch."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterable

SeenKey = tuple[int, str]  # (size, fingerprint)

# TEMP: it belongs to this connection only (gone with it, never written to a shared file,
# never a lock another process waits on), and SQLite keeps it on disk past its page cache,
# so a million files met cost no Python object each.
SCHEMA = (
    "CREATE TEMP TABLE IF NOT EXISTS scan_seen (scan INTEGER NOT NULL, size INTEGER NOT NULL,"
    " fingerprint TEXT NOT NULL, display TEXT NOT NULL, PRIMARY KEY (scan, size, fingerprint))"
    " WITHOUT ROWID"
)
_SCANS = itertools.count(1)  # several scans may share one connection
_IN_CHUNK = 500  # keys per IN (...) list (two host parameters each), far below the limit


def delete_rows(db: sqlite3.Connection, sql: str, params: tuple[object, ...]) -> None:
    """Run `sql`, a DELETE of any number of TEMP rows, with memory that does not grow with
    them. The TEMP schema journals in memory (a file journal cost ~9 system calls per small
    file), and that journal keeps the old content of every page a statement changes: the
    end of a scan of a million files held ~125 MiB at once. A file journal spills to disk
    past 64 KiB; a bulk delete is rare enough for its writes."""
    (mode,) = db.execute("PRAGMA temp.journal_mode").fetchone()
    if str(mode).lower() != "memory":
        db.execute(sql, params)
        return
    # Inside a write transaction of this connection SQLite keeps the old mode: the delete
    # then runs as before rather than not at all.
    (mode,) = db.execute("PRAGMA temp.journal_mode=DELETE").fetchone()
    try:
        db.execute(sql, params)
    finally:
        if str(mode).lower() != "memory":
            db.execute("PRAGMA temp.journal_mode=MEMORY")


class SeenIndex:
    """Which (size, fingerprint) each scan met, and the display path it met first."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        db.execute("PRAGMA temp.journal_mode=MEMORY")
        db.execute(SCHEMA)

    @classmethod
    def private(cls) -> SeenIndex:
        """An index on a connection of its own (to a private temporary database, deleted
        when closed): for a scan that has no journal connection to share, or should not
        share one."""
        return cls(sqlite3.connect(""))

    def new_scan(self) -> int:
        return next(_SCANS)

    def seen(self, scan: int, keys: Iterable[SeenKey]) -> dict[SeenKey, str]:
        """Which of `keys` this scan met before, with the display path met first."""
        found: dict[SeenKey, str] = {}
        wanted = list(dict.fromkeys(keys))
        for start in range(0, len(wanted), _IN_CHUNK):
            part = wanted[start : start + _IN_CHUNK]
            marks = ",".join("(?,?)" for _ in part)
            flat = [v for key in part for v in key]
            # A join on the VALUES: a lookup by the whole key each. `(size, fingerprint) IN
            # (VALUES ...)` searched by `scan` alone, reading every key the scan met (a
            # batch took 97 ms at 200,000 files met, against 0.2 ms).
            rows = self.db.execute(
                f"WITH k(size, fingerprint) AS (VALUES {marks})"
                " SELECT s.size, s.fingerprint, s.display FROM k JOIN temp.scan_seen s"
                " ON s.scan = ? AND s.size = k.size AND s.fingerprint = k.fingerprint",
                (*flat, scan),
            )
            for size, fingerprint, display in rows:
                found[(size, fingerprint)] = display
        return found

    def note(self, scan: int, entries: dict[SeenKey, str]) -> None:
        self.db.executemany(
            "INSERT OR IGNORE INTO temp.scan_seen VALUES (?, ?, ?, ?)",
            [(scan, size, fp, display) for (size, fp), display in entries.items()],
        )

    def end(self, scan: int) -> None:
        delete_rows(self.db, "DELETE FROM temp.scan_seen WHERE scan = ?", (scan,))

    def close(self) -> None:
        self.db.close()
