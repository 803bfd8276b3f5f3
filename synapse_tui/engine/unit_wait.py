"""The jobs waiting for their data unit, sorted by (collection, unit key) in a TEMP table."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterable

from synapse_tui.engine.seen_index import delete_rows

# TEMP, like the session's membership (engine/session.py): private to this process, gone
# with it, and kept on disk by SQLite past its page cache. Its primary key is the order the
# units step reads groups in, so a million waiting files are never sorted in Python.
SCHEMA = (
    "CREATE TEMP TABLE IF NOT EXISTS unit_wait (tag INTEGER NOT NULL,"
    " collection INTEGER NOT NULL, unit_key BLOB NOT NULL, id INTEGER NOT NULL,"
    " PRIMARY KEY (tag, collection, unit_key, id)) WITHOUT ROWID"
)
_TAGS = itertools.count(1)  # several managers may share one journal connection
_START = (-(1 << 62), b"")  # before every (collection, unit key)

Group = tuple[int, str, list[int]]  # collection, unit key, the ids of its jobs by id


# A unit key is a file's path as str: one not UTF-8 holds surrogate escapes, which SQLite
# refuses as text. Kept as its bytes (surrogatepass: one key, one blob, and back).
def _blob(key: str) -> bytes:
    return key.encode("utf-8", "surrogatepass")


def _text(blob: bytes) -> str:
    return blob.decode("utf-8", "surrogatepass")


class UnitWait:
    """One units step's work list: (collection, unit key, job id), read a page of groups at
    a time in key order."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.tag = next(_TAGS)
        db.execute(SCHEMA)

    def add(self, rows: Iterable[tuple[int, str, int]]) -> None:
        self.db.executemany(
            "INSERT OR IGNORE INTO temp.unit_wait VALUES (?, ?, ?, ?)",
            ((self.tag, c, _blob(k), i) for c, k, i in rows),
        )

    def clear(self) -> None:
        delete_rows(self.db, "DELETE FROM temp.unit_wait WHERE tag = ?", (self.tag,))

    def groups(self, after: tuple[int, str] | None, limit: int) -> list[Group]:
        """Up to `limit` groups after the key `after` (None: from the first), all of one
        collection (one request names one), each with every job id it has."""
        c0, k0 = (after[0], _blob(after[1])) if after is not None else _START
        keys = self.db.execute(
            "SELECT DISTINCT collection, unit_key FROM temp.unit_wait WHERE tag = ?"
            " AND (collection, unit_key) > (?, ?) ORDER BY collection, unit_key LIMIT ?",
            (self.tag, c0, k0, limit),
        ).fetchall()
        if not keys:
            return []
        collection = keys[0][0]
        keys = [k for k in keys if k[0] == collection]
        first, last = keys[0][1], keys[-1][1]
        # A range of the primary key on both sides: the page's rows, never those before.
        rows = self.db.execute(
            "SELECT unit_key, id FROM temp.unit_wait WHERE tag = ? AND collection = ?"
            " AND unit_key >= ? AND unit_key <= ? ORDER BY unit_key, id",
            (self.tag, collection, first, last),
        )
        out: list[Group] = []
        for blob, job_id in rows:
            key = _text(blob)
            if not out or out[-1][1] != key:
                out.append((collection, key, []))
            out[-1][2].append(job_id)
        return out
