"""The units step's work list: every group once, in key order, one collection a page, and a
page costs the same at the end of a long list as at its start."""

from __future__ import annotations

import sqlite3

from synapse_tui.engine.unit_wait import Group, UnitWait


def pages(wait: UnitWait, limit: int) -> list[list[Group]]:
    out: list[list[Group]] = []
    after: tuple[int, str] | None = None
    while groups := wait.groups(after, limit):
        out.append(groups)
        after = (groups[-1][0], groups[-1][1])
    return out


def test_every_group_comes_once_in_key_order_one_collection_a_page() -> None:
    wait = UnitWait(sqlite3.connect(""))
    other = UnitWait(wait.db)  # another manager on the same connection: not mixed in
    other.add([(1, "a", 99)])
    rows = [(2, "b", 5), (1, "c", 3), (1, "a", 7), (1, "a", 2), (2, "a", 1), (1, "b", 4)]
    wait.add(rows)
    got = pages(wait, 2)
    assert got == [
        [(1, "a", [2, 7]), (1, "b", [4])],
        [(1, "c", [3])],  # the page ends with its collection
        [(2, "a", [1]), (2, "b", [5])],
    ]
    wait.clear()
    assert wait.groups(None, 10) == []
    assert other.groups(None, 10) == [(1, "a", [99])]


def steps(db: sqlite3.Connection, read: object) -> int:
    count = [0]

    def tick() -> int:
        count[0] += 1
        return 0

    db.set_progress_handler(tick, 1)
    try:
        read()  # type: ignore[operator]
    finally:
        db.set_progress_handler(None, 1)
    return count[0]


def test_a_page_at_the_end_costs_what_the_first_costs() -> None:
    wait = UnitWait(sqlite3.connect(""))
    n = 20_000
    wait.add((1, f"/d/s{i:07}", 2 * i + j) for i in range(n) for j in (0, 1))
    first = steps(wait.db, lambda: wait.groups(None, 100))
    last_key = (1, f"/d/s{n - 101:07}")
    last = steps(wait.db, lambda: wait.groups(last_key, 100))
    assert len(wait.groups(last_key, 100)) == 100
    assert last <= 2 * first, (first, last)
