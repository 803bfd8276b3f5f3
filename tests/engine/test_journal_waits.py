"""The journal's waits for another process's write lock stay off the engine's loop, and
closing is bounded (issue 19).

- `settled()` returned once the writes queued before the call were committed; the read
  that followed waited (blocking, on the loop) for the writes other tasks queued while it
  waited, which another process's lock could hold up again.
- Past `Writer.BOUND` units in waiting, `write` blocked the loop until the writer had room.
- `close` waited for the writer, which tried `BEGIN IMMEDIATE` for as long as another
  process held the lock: forever.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from synapse_tui.engine.errors import JournalFailed
from synapse_tui.engine.journal import Journal
from synapse_tui.engine.journal_writer import Unit, Writer
from tests.harness.heartbeat import Heartbeat
from tests.harness.lock_holder import LockHolder, until

HOLD = 3.0  # seconds the other process keeps the write lock


def _note(text: str) -> Unit:
    return lambda db: db.execute("INSERT INTO job_errors VALUES (0, 0, ?)", (text,))


def _notes(path: Path) -> list[str]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return [r[0] for r in db.execute("SELECT message FROM job_errors ORDER BY rowid")]
    finally:
        db.close()


async def test_reads_after_settled_wait_for_nothing_on_the_loop(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    second: list[LockHolder] = []
    try:
        with LockHolder(journal.path) as first:
            journal.write(_note("first"))

            def meanwhile() -> None:
                # Run by the writer's thread once "first" is committed, before the waiter
                # is told: another task's write is queued, and the lock taken again.
                journal.write(_note("meanwhile"))
                second.append(LockHolder(journal.path, HOLD).__enter__())

            journal._writer.after_commit(meanwhile)

            async def settle_then_read() -> list[str]:
                await journal.settled()
                rows = journal.connection.execute("SELECT message FROM job_errors ORDER BY rowid")
                journal.catch_up()  # what every read does first: nothing left to wait for
                return [r[0] for r in rows]

            async with Heartbeat() as beat:
                reader = asyncio.create_task(settle_then_read())
                await asyncio.sleep(0.1)
                first.release()
                await until(lambda: bool(second), 10, "the lock to be taken again")
                await until(lambda: not second[0].held(), 4 * HOLD, "the lock to go again")
                seen = await asyncio.wait_for(reader, 30)
        assert beat.longest < HOLD / 2, f"the loop stood still for {beat.longest:.1f}s"
        assert seen == ["first", "meanwhile"]  # every write queued before it returned
    finally:
        for holder in second:
            holder.__exit__(None, None, None)
        journal.close()


async def test_a_full_queue_never_blocks_the_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Writer, "BOUND", 8)
    journal = Journal(tmp_path)
    try:
        with LockHolder(journal.path, HOLD) as holder:
            journal.write(_note("0"))  # taken by the writer, which waits for the lock
            await until(lambda: not journal._writer._queue, 10, "the writer to take it")
            async with Heartbeat() as beat:
                for n in range(1, 12):  # past the bound: `write` does not wait on the loop
                    journal.write(_note(str(n)))
                assert holder.held(), "the writes waited for the other process's lock"
                assert not journal.has_room()
                room = asyncio.create_task(journal.room())  # a bulk producer waits here
                await asyncio.sleep(0.2)
                assert not room.done() and holder.held()
                await asyncio.wait_for(room, 4 * HOLD)
            assert beat.longest < HOLD / 2, f"the loop stood still for {beat.longest:.1f}s"
        await journal.settled()
    finally:
        journal.close()
    assert _notes(journal.path) == [str(n) for n in range(12)]  # in the order queued


def test_close_gives_up_a_held_lock_after_its_patience(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Journal, "CLOSE_PATIENCE", 0.5, raising=False)
    journal = Journal(tmp_path)
    journal.write(_note("committed"))
    asyncio.run(journal.settled())
    outcome: list[BaseException | None] = []

    def close() -> None:
        try:
            journal.close()
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    with LockHolder(journal.path) as holder:
        journal.write(_note("lost"))
        closing = threading.Thread(target=close)
        started = time.monotonic()
        closing.start()
        closing.join(10)
        took = time.monotonic() - started
        still_closing = closing.is_alive()
        holder.release()  # (the old journal waited for this)
        closing.join(30)
    assert not still_closing, "close waited for the other process's lock"
    assert took < 5
    [error] = outcome
    assert isinstance(error, JournalFailed)
    message = str(error)
    assert "\n" not in message and "lock" in message and "1 change(s)" in message
    assert _notes(journal.path) == ["committed"]  # nothing half made: the rest never was


async def test_a_manager_closes_within_the_journals_patience(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.engine.fakeserver import FakeServer
    from tests.engine.test_uploader import manager

    monkeypatch.setattr(Journal, "CLOSE_PATIENCE", 0.5, raising=False)
    m = manager(FakeServer(), tmp_path / "state", [])
    journal = m.journal
    journal.write(_note("committed"))
    await journal.settled()
    with LockHolder(journal.path, HOLD) as holder:
        async with m:
            journal.write(_note("lost"))  # waits for the lock
        assert holder.held(), "the manager's close waited for the other process's lock"
        with pytest.raises(JournalFailed) as failed:
            journal.close()
        assert holder.held()
    assert "\n" not in str(failed.value) and "not saved" in str(failed.value)
    assert _notes(journal.path) == ["committed"]
