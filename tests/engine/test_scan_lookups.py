"""A scan batch's lookups (the duplicate index, the ledger) cost the batch, not the files
met before it: counted in SQLite VM steps, not timed."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from synapse_tui.engine.journal import Journal
from synapse_tui.engine.seen_index import SeenIndex, SeenKey

HOST = "http://127.0.0.1:1"
BATCH = 64


def key(i: int) -> SeenKey:
    return (i % 997, f"{i:032x}")


def steps(db: sqlite3.Connection, work: Callable[[], object]) -> int:
    """SQLite VM steps (in tens) that `work` runs on `db`."""
    count = [0]

    def step() -> int:
        count[0] += 1
        return 0

    db.set_progress_handler(step, 10)
    try:
        work()
    finally:
        db.set_progress_handler(None, 10)
    return count[0]


def test_the_duplicate_index_looks_a_batch_up_by_its_keys() -> None:
    index = SeenIndex.private()
    try:
        scan = index.new_scan()
        wanted = [key(i * 31) for i in range(BATCH)] + [(1, "never met")]
        cost = []
        met = 0
        for total in (2_000, 20_000):
            index.note(scan, {key(i): f"p{i}" for i in range(met, total)})
            met = total
            cost.append(steps(index.db, lambda: index.seen(scan, wanted)))
            assert index.seen(scan, wanted) == {key(i * 31): f"p{i * 31}" for i in range(BATCH)}
        # By the whole key: the same steps with ten times the files met (it read every
        # key of the scan before: 10x the steps).
        assert cost[1] <= cost[0] * 1.5, cost
    finally:
        index.close()


def test_the_ledger_answers_a_batch_in_one_query_by_its_keys(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "state")
    try:
        cost = []
        wanted = [key(i * 31) for i in range(BATCH)] + [(1, "never uploaded")]
        done = 0
        for total in (2_000, 20_000):
            rows: list[tuple[object, ...]] = [
                (HOST, key(i)[1], key(i)[0], "m", f"u{i}", b"/p%d" % i, time.time())
                for i in range(done, total)
            ]
            done = total

            def insert(db: sqlite3.Connection, rows: list[tuple[object, ...]] = rows) -> None:
                db.executemany("INSERT INTO ledger VALUES (?, ?, ?, ?, ?, ?, ?)", rows)

            journal.write(insert)
            journal.catch_up()
            db = journal.connection
            cost.append(steps(db, lambda: journal.uploads_of(HOST, wanted, wait=False)))
            found = journal.uploads_of(HOST, wanted)
            assert found == {key(i * 31): f"u{i * 31}" for i in range(BATCH)}
        assert cost[1] <= cost[0] * 1.5, cost
        assert journal.uploads_of("http://elsewhere", wanted) == {}
    finally:
        journal.close()
