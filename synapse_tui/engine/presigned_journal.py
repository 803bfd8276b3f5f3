"""The journal's tables of presigned uploads: each job's file key, URLs and finished parts.

Presigned URLs are credentials for their objects: they live only here, in the journal's
0600 database, and go when the job is done. A part's ETag is written as the part
finishes, so a resume after a crash or `kill -9` sends only the parts that lack one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from synapse_tui.engine.journal import Journal

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS presigned_files (
    job_id INTEGER PRIMARY KEY,
    file_key TEXT NOT NULL,
    url TEXT,
    upload_id TEXT,
    part_size INTEGER,
    expires_at REAL NOT NULL,
    created_at REAL NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS presigned_parts (
    job_id INTEGER NOT NULL,
    part_number INTEGER NOT NULL,
    url TEXT NOT NULL,
    etag TEXT,
    PRIMARY KEY (job_id, part_number)
)""",
)


@dataclass
class Part:
    url: str
    etag: str | None = None


@dataclass
class Grant:
    """What the backend handed out for one file: a single PUT URL, or a multipart upload."""

    file_key: str
    expires_at: float
    url: str | None = None
    upload_id: str | None = None
    part_size: int | None = None
    parts: dict[int, Part] = field(default_factory=dict)

    @property
    def multipart(self) -> bool:
        return self.upload_id is not None

    def __repr__(self) -> str:  # never the URLs
        return f"Grant({self.file_key!r}, multipart={self.multipart}, parts={len(self.parts)})"


class PresignedJournal:
    """Reads and writes of the two tables, on the journal's connection."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        db = journal._db
        for statement in SCHEMA:
            db.execute(statement)

    def save(self, grants: dict[int, Grant]) -> None:
        """Record the grants of a batch in one write (replacing any older one of a job)."""
        now = time.time()
        with self.journal._tx() as db:
            for job_id, g in grants.items():
                db.execute("DELETE FROM presigned_parts WHERE job_id = ?", (job_id,))
                db.execute(
                    "INSERT OR REPLACE INTO presigned_files VALUES (?,?,?,?,?,?,?)",
                    (job_id, g.file_key, g.url, g.upload_id, g.part_size, g.expires_at, now),
                )
                db.executemany(
                    "INSERT INTO presigned_parts VALUES (?,?,?,?)",
                    [(job_id, n, p.url, p.etag) for n, p in g.parts.items()],
                )

    def load(self, job_id: int) -> Grant | None:
        db = self.journal._db
        row = db.execute(
            "SELECT file_key, url, upload_id, part_size, expires_at FROM presigned_files"
            " WHERE job_id = ?",
            (job_id,),
        ).fetchone()
        if row is None:
            return None
        grant = Grant(row[0], row[4], url=row[1], upload_id=row[2], part_size=row[3])
        for n, url, etag in db.execute(
            "SELECT part_number, url, etag FROM presigned_parts WHERE job_id = ?", (job_id,)
        ):
            grant.parts[int(n)] = Part(url, etag)
        return grant

    def has(self, job_id: int) -> bool:
        row = self.journal._db.execute(
            "SELECT 1 FROM presigned_files WHERE job_id = ?", (job_id,)
        ).fetchone()
        return row is not None

    def part_done(self, job_id: int, number: int, etag: str) -> None:
        with self.journal._tx(single=True) as db:
            db.execute(
                "UPDATE presigned_parts SET etag = ? WHERE job_id = ? AND part_number = ?",
                (etag, job_id, number),
            )

    def renewed(self, job_id: int, grant: Grant) -> None:
        """Fresh URLs (same key, same multipart upload) after the old ones expired."""
        with self.journal._tx() as db:
            db.execute(
                "UPDATE presigned_files SET url = ?, expires_at = ? WHERE job_id = ?",
                (grant.url, grant.expires_at, job_id),
            )
            db.executemany(
                "UPDATE presigned_parts SET url = ? WHERE job_id = ? AND part_number = ?",
                [(p.url, job_id, n) for n, p in grant.parts.items()],
            )

    def forget(self, job_id: int, *, lazy: bool = False) -> None:
        """Drop a job's grant (done, or starting again); `lazy` joins the next commit."""
        with self.journal._tx(lazy) as db:
            db.execute("DELETE FROM presigned_parts WHERE job_id = ?", (job_id,))
            db.execute("DELETE FROM presigned_files WHERE job_id = ?", (job_id,))
