"""SQLite records of presigned uploads: one row per file key handed out, in the store."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from synapse_tui.server.store import Store

_SCHEMA = """
CREATE TABLE IF NOT EXISTS presigned_files (
    file_key TEXT PRIMARY KEY,
    owner INTEGER NOT NULL,
    filename TEXT NOT NULL,
    size INTEGER NOT NULL,
    upload_id TEXT,
    part_size INTEGER,
    created_at REAL NOT NULL,
    data_file INTEGER,
    checksum TEXT
)
"""


@dataclass(frozen=True)
class PresignedFile:
    """A file key given to a client: what it announced, and its data file once confirmed."""

    file_key: str
    owner: int
    filename: str
    size: int
    upload_id: str | None
    part_size: int | None
    created_at: float
    data_file: int | None
    checksum: str | None


class PresignedRecords:
    """Reads and writes of `presigned_files` through the store's connections."""

    def __init__(self, store: Store) -> None:
        self.store = store
        with store._tx() as db:
            db.execute(_SCHEMA)

    def add(self, rows: list[PresignedFile]) -> None:
        with self.store._tx() as db:
            db.executemany(
                "INSERT INTO presigned_files VALUES (?,?,?,?,?,?,?,?,?)",
                [_values(r) for r in rows],
            )

    def get(self, file_key: str) -> PresignedFile | None:
        row = (
            self.store._conn()
            .execute("SELECT * FROM presigned_files WHERE file_key = ?", (file_key,))
            .fetchone()
        )
        return PresignedFile(*row) if row else None

    def confirmed(self, file_key: str, data_file: int, checksum: str) -> None:
        with self.store._tx() as db:
            db.execute(
                "UPDATE presigned_files SET data_file = ?, checksum = ? WHERE file_key = ?",
                (data_file, checksum, file_key),
            )


def _values(r: PresignedFile) -> tuple[Any, ...]:
    return (
        r.file_key,
        r.owner,
        r.filename,
        r.size,
        r.upload_id,
        r.part_size,
        r.created_at,
        r.data_file,
        r.checksum,
    )
