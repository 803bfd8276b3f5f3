"""Writes nothing waits for (a small file's done note) ride along with the next commit.

The journal's writer commits a unit queued with `durable=False` together with the next
unit something waits for, or after `Writer.LAZY` seconds: one commit for many small files
instead of a thread wake-up and a commit for every one or two. Anything that waits (a
request's `durable`, `settled`, a blocking read) still gets its commit at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from synapse_tui.engine.journal_writer import Ticket, Writer


class _Setup:
    def __init__(self, path: Path, lazy: float) -> None:
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("CREATE TABLE notes (note TEXT)")
        self.commits = 0
        self.writer = Writer(self.db, self._tx, self._committed)
        self.writer.LAZY = lazy  # this writer's own, read by its thread on each wait

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        yield self.db

    def _committed(self) -> None:
        self.commits += 1

    def note(self, text: str, *, durable: bool) -> Ticket:
        return self.writer.submit(
            lambda db: db.execute("INSERT INTO notes VALUES (?)", (text,)), durable=durable
        )

    def committed(self) -> int:
        return self.writer._committed

    def close(self) -> list[str]:
        self.writer.close()
        notes = [r[0] for r in self.db.execute("SELECT note FROM notes ORDER BY rowid")]
        self.db.close()
        return notes


def _until(check: Callable[[], bool], deadline: float) -> bool:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if check():
            return True
        time.sleep(0.005)
    return False


def test_lazy_units_wait_for_the_next_durable_one_and_share_its_commit(tmp_path: Path) -> None:
    s = _Setup(tmp_path / "j.sqlite3", lazy=60.0)
    try:
        first = s.note("done 1", durable=False)
        s.note("done 2", durable=False)
        # Without anyone waiting they are not committed one by one as they come (the
        # writer used to commit each at once): nothing in this window.
        time.sleep(0.3)
        assert s.committed() == 0 and s.commits == 0
        last = s.note("creating 3", durable=True)
        assert _until(lambda: s.committed() >= last.seq, 10.0)
        assert s.commits == 1  # the three in one transaction
        assert first.error is None
    finally:
        assert s.close() == ["done 1", "done 2", "creating 3"]


def test_a_waiter_makes_lazy_units_due_at_once(tmp_path: Path) -> None:
    s = _Setup(tmp_path / "j.sqlite3", lazy=60.0)
    try:
        ticket = s.note("done", durable=False)
        started = time.monotonic()
        s.writer.wait(ticket)  # a blocking read's catch-up
        assert time.monotonic() - started < 10.0
        other = s.note("done again", durable=False)

        async def settle() -> None:
            await asyncio.wait_for(s.writer.result(other), 10.0)  # `settled()`

        asyncio.run(settle())
        assert s.committed() == other.seq
    finally:
        assert s.close() == ["done", "done again"]


def test_a_lazy_unit_alone_is_committed_within_the_delay(tmp_path: Path) -> None:
    s = _Setup(tmp_path / "j.sqlite3", lazy=0.05)
    try:
        ticket = s.note("done", durable=False)
        assert _until(lambda: s.committed() >= ticket.seq, 10.0)
    finally:
        assert s.close() == ["done"]
