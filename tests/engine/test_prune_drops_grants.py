"""Pruning a job drops its presigned grant (the URLs are credentials), and its id is never
given to a new job (SQLite alone reuses the highest), which would take what keys on it."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from synapse_tui.engine.events import JobState
from synapse_tui.engine.hashing import Identity
from synapse_tui.engine.journal import FINISHED, Journal
from synapse_tui.engine.presigned_journal import Grant, Part, PresignedJournal

SECRET = "https://storage.invalid/bucket/key?X-Amz-Signature=secret"


def _add(journal: Journal, name: bytes, fingerprint: str) -> int:
    return journal.add_job(name, Identity(10, 1, 2, 3), fingerprint, "h", 1 << 20).id


async def _cancelled_with_grant(journal: Journal) -> int:
    records = PresignedJournal(journal)
    await records.open()
    job_id = _add(journal, b"/data/a", "fa")
    grant = Grant("up/a", 1e12, upload_id="mp-1", part_size=5, parts={1: Part(SECRET, "e1")})
    records.save({job_id: grant})
    journal.update(job_id, state=JobState.CANCELLED)
    await journal.settled()
    return job_id


def _grant_rows(journal: Journal) -> int:
    db = sqlite3.connect(journal.path)
    try:
        files = db.execute("SELECT COUNT(*) FROM presigned_files").fetchone()[0]
        parts = db.execute("SELECT COUNT(*) FROM presigned_parts").fetchone()[0]
        return int(files) + int(parts)
    finally:
        db.close()


def test_prune_drops_the_grants_of_pruned_jobs(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    try:
        asyncio.run(_cancelled_with_grant(journal))
        assert _grant_rows(journal) == 2
        deleted, _ = journal.prune(FINISHED)
        assert deleted == 1
        assert _grant_rows(journal) == 0  # the presigned URLs went with the row
    finally:
        journal.close()


def test_a_new_job_never_takes_a_pruned_jobs_id_nor_its_grant(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    try:
        old = asyncio.run(_cancelled_with_grant(journal))
        journal.prune(FINISHED)
        new = _add(journal, b"/data/other", "fb")  # another file
    finally:
        journal.close()

    async def later_session() -> Grant | None:
        again = Journal(tmp_path)
        try:
            records = PresignedJournal(again)
            await records.open()
            return await records.load(new)
        finally:
            again.close()

    assert new != old  # SQLite alone gives the highest pruned id again
    assert asyncio.run(later_session()) is None
