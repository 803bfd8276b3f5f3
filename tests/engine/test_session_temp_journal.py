"""The engine's TEMP tables (membership, the scan's duplicate index, the router's batches)
keep their rollback journal in memory: it was a file on disk, written and truncated on the
engine's loop for every statement (~9 system calls per small file in case 4). A TEMP
table is private to the process and gone with it, so a crash loses nothing it needs."""

from __future__ import annotations

from pathlib import Path

from synapse_tui.engine.journal import Journal
from synapse_tui.engine.session import Session


def test_the_temp_schema_journals_in_memory(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    try:
        session = Session(journal)
        (mode,) = journal.connection.execute("PRAGMA temp.journal_mode").fetchone()
        assert str(mode).lower() == "memory"
        # and the tables still work as before: a member added once
        assert session.add(7) and not session.add(7) and session.has(7)
        (main_mode,) = journal.connection.execute("PRAGMA main.journal_mode").fetchone()
        assert str(main_mode).lower() == "wal"  # the shared journal's own mode is untouched
    finally:
        journal.close()
