"""The journal's writer runs a group's units without a savepoint each; a failing unit is
still undone alone (the group runs again, a savepoint per unit), the others committed."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from synapse_tui.engine.journal import Journal
from synapse_tui.engine.journal_writer import Ticket, Unit

UNITS = 40


def _traced(journal: Journal) -> list[str]:
    statements: list[str] = []
    journal._w.set_trace_callback(statements.append)  # the writer's thread only runs these
    return statements


def _note(text: str) -> Unit:
    def unit(db: sqlite3.Connection) -> str:
        db.execute("CREATE TABLE IF NOT EXISTS notes (note TEXT)")
        db.execute("INSERT INTO notes VALUES (?)", (text,))
        return text

    return unit


def _notes(journal: Journal) -> list[str]:
    db = sqlite3.connect(journal.path)
    try:
        return [r[0] for r in db.execute("SELECT note FROM notes ORDER BY rowid")]
    finally:
        db.close()


def _group_behind_a_gate(journal: Journal, units: list[Unit]) -> list[Ticket]:
    """Queue `units` while the writer is held in a unit of its own: they make one group."""
    entered, gate = threading.Event(), threading.Event()

    def hold(db: sqlite3.Connection) -> None:
        entered.set()
        assert gate.wait(10)

    journal._writer.submit(hold)
    assert entered.wait(10)
    tickets = [journal._writer.submit(unit) for unit in units]
    gate.set()
    return tickets


def test_a_group_of_units_takes_no_savepoint_per_unit(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "state")
    try:
        statements = _traced(journal)
        tickets = _group_behind_a_gate(journal, [_note(f"n{i}") for i in range(UNITS)])
        assert [journal._writer.wait(t) for t in tickets] == [f"n{i}" for i in range(UNITS)]
    finally:
        journal.close()
    assert _notes(journal) == [f"n{i}" for i in range(UNITS)]
    savepoints = [s for s in statements if s.lstrip().upper().startswith("SAVEPOINT")]
    commits = [s for s in statements if s.strip().upper() == "COMMIT"]
    # One per group (2 here: the gate's and the notes'); one per unit before (41).
    assert len(savepoints) <= len(commits) <= 3, statements


def test_a_failing_unit_is_undone_alone_and_the_others_committed(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "state")
    runs: list[str] = []

    def failing(db: sqlite3.Connection) -> None:
        runs.append("failing")
        db.execute("CREATE TABLE IF NOT EXISTS notes (note TEXT)")
        db.execute("INSERT INTO notes VALUES ('half of the failing unit')")
        raise ValueError("this unit fails")

    try:
        tickets = _group_behind_a_gate(journal, [_note("before"), failing, _note("after")])
        with pytest.raises(ValueError, match="this unit fails"):
            journal._writer.wait(tickets[1])  # (a failed write breaks the journal: any wait)
        assert tickets[0].result == "before" and tickets[0].error is None
        assert tickets[2].result == "after" and tickets[2].error is None
    finally:
        journal.close()
    # Its own half is undone; the units around it, in the same transaction, are kept (this
    # holds on the old writer too: the fast path must not change it).
    assert _notes(journal) == ["before", "after"]
    assert runs == ["failing", "failing"]  # the fast run, then the careful one
