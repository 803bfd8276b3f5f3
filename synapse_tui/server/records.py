"""SQLite records of data files and data units (mixed into `Store`, sharing its connections).

A data file is a complete upload registered for data units (one per upload): its bytes are
the upload's file, its original name the upload's filename. A data unit keeps the files the
client sent (`{spec: {checksum, path}}`) plus the id of the data file each checksum named
when the unit was made (`data_file`), its meta and its groups.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from synapse_tui.server.store import Upload

SCHEMA = """
CREATE TABLE IF NOT EXISTS data_files (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    owner INTEGER NOT NULL REFERENCES users(id),
    chunked_upload TEXT NOT NULL UNIQUE,
    checksum TEXT NOT NULL,
    size INTEGER NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS data_files_by_checksum ON data_files(owner, checksum);
CREATE TABLE IF NOT EXISTS data_units (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    owner INTEGER NOT NULL REFERENCES users(id),
    data_collection INTEGER NOT NULL,
    files TEXT NOT NULL,
    meta TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS data_units_by_owner ON data_units(owner, data_collection);
"""

# Columns added since the first release: (table, column, definition). A database made
# before gets them on open (ALTER TABLE ... ADD COLUMN keeps every row).
_ADDED = [("data_units", "groups", "TEXT NOT NULL DEFAULT '[]'")]

_FILE_COLUMNS = "f.id, f.owner, f.chunked_upload, f.checksum, f.size, f.created_at, u.filename"
_FILE_FROM = "data_files f LEFT JOIN uploads u ON u.id = f.chunked_upload"
_UNIT_COLUMNS = "id, data_collection, files, meta, groups, created_at"


def migrate(conn: sqlite3.Connection) -> None:
    """Create the data tables, then add the columns an older database lacks."""
    conn.executescript(SCHEMA)
    for table, column, definition in _ADDED:
        have = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        if column not in have:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")


class DataRecords:
    """Data files (one per complete upload) and data units of the caller's collections."""

    def _conn(self) -> sqlite3.Connection:
        raise NotImplementedError

    def _tx(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    # -- data files ------------------------------------------------------------

    def _files_where(self, where: str, args: tuple[Any, ...]) -> list[dict[str, Any]]:
        rows = self._conn().execute(f"SELECT {_FILE_COLUMNS} FROM {_FILE_FROM} WHERE {where}", args)
        return [_data_file(r) for r in rows]

    def data_file_for_upload(self, upload_id: str) -> dict[str, Any] | None:
        found = self._files_where("f.chunked_upload = ?", (upload_id,))
        return found[0] if found else None

    def data_file(self, file_id: int) -> dict[str, Any] | None:
        found = self._files_where("f.id = ?", (file_id,))
        return found[0] if found else None

    def add_data_file(self, owner: int, upload: Upload, now: float) -> dict[str, Any]:
        """The data file of a complete upload (one per upload; a repeat returns the first)."""
        with self._tx() as db:
            db.execute(
                "INSERT OR IGNORE INTO data_files"
                " (owner, chunked_upload, checksum, size, created_at) VALUES (?,?,?,?,?)",
                (owner, upload.id, upload.checksum, upload.size, now),
            )
        found = self.data_file_for_upload(upload.id)
        assert found is not None
        return found

    def files_by_checksum(self, owner: int, checksums: list[str]) -> dict[str, dict[str, Any]]:
        """The owner's first data file of each checksum that has one."""
        out: dict[str, dict[str, Any]] = {}
        unique = sorted(set(checksums))
        for start in range(0, len(unique), 500):  # under SQLite's bound-parameter limit
            part = unique[start : start + 500]
            marks = ",".join("?" * len(part))
            where = f"f.owner = ? AND f.checksum IN ({marks}) ORDER BY f.id"
            for record in self._files_where(where, (owner, *part)):
                out.setdefault(record["checksum"], record)
        return out

    def files_by_id(self, ids: list[int]) -> dict[int, dict[str, Any]]:
        out: dict[int, dict[str, Any]] = {}
        unique = sorted(set(ids))
        for start in range(0, len(unique), 500):
            part = unique[start : start + 500]
            where = f"f.id IN ({','.join('?' * len(part))})"
            out.update((r["id"], r) for r in self._files_where(where, tuple(part)))
        return out

    def add_stored_data_file(
        self, owner: int, source: str, checksum: str, size: int, now: float
    ) -> int:
        """The data file of an object stored elsewhere (presigned upload: `source` is its
        `s3://bucket/key`, unique as an upload id is); a repeat returns the first's id."""
        with self._tx() as db:
            db.execute(
                "INSERT OR IGNORE INTO data_files"
                " (owner, chunked_upload, checksum, size, created_at) VALUES (?,?,?,?,?)",
                (owner, source, checksum, size, now),
            )
            (data_file_id,) = db.execute(
                "SELECT id FROM data_files WHERE chunked_upload = ?", (source,)
            ).fetchone()
        return int(data_file_id)

    def has_data_file(self, owner: int, checksum: str) -> bool:
        return bool(self.files_by_checksum(owner, [checksum]))

    # -- data units ------------------------------------------------------------

    def add_data_units(
        self,
        owner: int,
        units: list[tuple[int, dict[str, Any], dict[str, Any], list[str]]],
        now: float,
    ) -> list[dict[str, Any]]:
        """Insert (collection, files, meta, groups) units in one transaction."""
        created = []
        with self._tx() as db:
            for collection, unit_files, meta, groups in units:
                cur = db.execute(
                    "INSERT INTO data_units(owner, data_collection, files, meta, groups,"
                    " created_at) VALUES (?,?,?,?,?,?)",
                    (owner, collection, json.dumps(unit_files), json.dumps(meta),
                     json.dumps(groups), now),
                )  # fmt: skip
                assert cur.lastrowid is not None
                created.append(
                    {"id": cur.lastrowid, "data_collection": collection, "files": unit_files,
                     "meta": meta, "groups": groups, "created_at": now}
                )  # fmt: skip
        return created

    def count_units(self, owner: int, collection: int | None) -> int:
        where, args = _unit_filter(owner, collection)
        (count,) = self._conn().execute(f"SELECT COUNT(*) FROM data_units {where}", args).fetchone()
        return int(count)

    def data_units(
        self, owner: int, collection: int | None, offset: int = 0, limit: int = -1
    ) -> list[dict[str, Any]]:
        """The owner's units (of one collection), oldest first, `limit` from `offset`."""
        where, args = _unit_filter(owner, collection)
        rows = self._conn().execute(
            f"SELECT {_UNIT_COLUMNS} FROM data_units {where} ORDER BY id LIMIT ? OFFSET ?",
            (*args, limit, offset),
        )
        return [_unit(r) for r in rows]

    def data_unit(self, owner: int, unit_id: int) -> dict[str, Any] | None:
        row = (
            self._conn()
            .execute(
                f"SELECT {_UNIT_COLUMNS} FROM data_units WHERE id = ? AND owner = ?",
                (unit_id, owner),
            )
            .fetchone()
        )
        return _unit(row) if row else None


def _unit_filter(owner: int, collection: int | None) -> tuple[str, tuple[Any, ...]]:
    if collection is None:
        return "WHERE owner = ?", (owner,)
    return "WHERE owner = ? AND data_collection = ?", (owner, collection)


def _unit(row: tuple[Any, ...]) -> dict[str, Any]:
    unit_id, collection, unit_files, meta, groups, created = row
    return {
        "id": unit_id,
        "data_collection": collection,
        "files": json.loads(unit_files),
        "meta": json.loads(meta),
        "groups": json.loads(groups) if groups else [],
        "created_at": created,
    }


def _data_file(row: tuple[Any, ...]) -> dict[str, Any]:
    return {
        "id": row[0],
        "owner": row[1],
        "chunked_upload": row[2],
        "checksum": row[3],
        "size": row[4],
        "created_at": row[5],
        "filename": row[6],
    }
