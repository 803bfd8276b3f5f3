"""SQLite records of data files and data units (mixed into `Store`, sharing its connections)."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from synapse_tui.server.store import Upload


class DataRecords:
    """Data files (one per complete upload) and data units of the caller's collections."""

    def _conn(self) -> sqlite3.Connection:
        raise NotImplementedError

    def _tx(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    def data_file_for_upload(self, upload_id: str) -> dict[str, Any] | None:
        row = (
            self._conn()
            .execute(
                "SELECT id, owner, chunked_upload, checksum, size, created_at FROM data_files"
                " WHERE chunked_upload = ?",
                (upload_id,),
            )
            .fetchone()
        )
        return _data_file(row) if row else None

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
        row = (
            self._conn()
            .execute(
                "SELECT 1 FROM data_files WHERE owner = ? AND checksum = ? LIMIT 1",
                (owner, checksum),
            )
            .fetchone()
        )
        return row is not None

    def add_data_units(
        self, owner: int, units: list[tuple[int, dict[str, Any], dict[str, Any]]], now: float
    ) -> list[dict[str, Any]]:
        """Insert (collection, files, meta) units in one transaction."""
        created = []
        with self._tx() as db:
            for collection, unit_files, meta in units:
                cur = db.execute(
                    "INSERT INTO data_units(owner, data_collection, files, meta, created_at)"
                    " VALUES (?,?,?,?,?)",
                    (owner, collection, json.dumps(unit_files), json.dumps(meta), now),
                )
                created.append(
                    {
                        "id": cur.lastrowid,
                        "data_collection": collection,
                        "files": unit_files,
                        "meta": meta,
                    }
                )
        return created

    def data_units(self, owner: int, collection: int | None) -> list[dict[str, Any]]:
        sql = "SELECT id, data_collection, files, meta FROM data_units WHERE owner = ?"
        args: tuple[Any, ...] = (owner,)
        if collection is not None:
            sql += " AND data_collection = ?"
            args += (collection,)
        rows = self._conn().execute(sql + " ORDER BY id", args)
        return [
            {
                "id": r[0],
                "data_collection": r[1],
                "files": json.loads(r[2]),
                "meta": json.loads(r[3]),
            }
            for r in rows
        ]


def _data_file(row: tuple[Any, ...]) -> dict[str, Any]:
    return {
        "id": row[0],
        "owner": row[1],
        "chunked_upload": row[2],
        "checksum": row[3],
        "size": row[4],
        "created_at": row[5],
    }
