"""Bulk controls over rows (pause all, retry failed) while another process holds the
journal's write lock do not stop the engine's loop (issue 19).

They read the queue's rows a page at a time; each read first waited (blocking, on the
loop) for the writes queued before it, among them their own, behind the other process's
lock: the loop, and every upload with it, stood still for as long as the lock was held.
Now the jobs in memory change at once and the rows follow, each page once the writes
before it are in, while the loop goes on.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from synapse_tui.engine import scheduler
from synapse_tui.engine.errors import AuthError
from synapse_tui.engine.events import Event, FatalStop, JobState
from tests.engine.fakeserver import FakeServer
from tests.engine.test_scale import tiny_files
from tests.engine.test_uploader import done, manager
from tests.harness.heartbeat import Heartbeat
from tests.harness.lock_holder import LockHolder, until

HOLD = 3.0  # seconds the other process keeps the write lock
FILES = 60


@pytest.fixture(autouse=True)
def small_lookahead(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scheduler, "LOOKAHEAD", 8)  # most jobs are rows only


async def test_pause_all_with_the_journal_locked_elsewhere_keeps_the_loop_turning(
    tmp_path: Path,
) -> None:
    tiny_files(tmp_path / "src", FILES)
    events: list[Event] = []
    async with manager(FakeServer(), tmp_path / "state", events) as m:
        m.drain()
        await m.add_paths([str(tmp_path / "src")])
        await m.journal.settled()
        [first] = m.window(0, 1)
        with LockHolder(m.journal.path, HOLD) as holder:
            m.journal.update(first.id, attempts=0)  # a write that waits for the lock
            async with Heartbeat() as beat:
                m.pause_all()
                # The jobs in memory are paused at once; the rows wait for the journal.
                assert m.jobs and all(j.state == JobState.PAUSED for j in m.jobs.values())
                await until(lambda: not holder.held(), 4 * HOLD, "the lock to go")
        assert beat.longest < HOLD / 2, f"the loop stood still for {beat.longest:.1f}s"
        await asyncio.wait_for(m.controls.done(), 30)
        counts = m.totals().counts
        assert counts["paused"] == FILES and counts["queued"] == 0
        assert len(m.window(0, 100, JobState.PAUSED)) == FILES  # the rows say so too


async def test_retry_failed_with_the_journal_locked_elsewhere_keeps_the_loop_turning(
    tmp_path: Path,
) -> None:
    tiny_files(tmp_path / "src", FILES)
    events: list[Event] = []
    async with manager(FakeServer(), tmp_path / "state", events) as m:
        m.drain()
        await m.add_paths([str(tmp_path / "src")])
        await m.journal.settled()
        ids = [j.id for j in m.window(0, 100)]
        for job_id in ids:  # every job failed (and left memory: rows only)
            job = m.get(job_id)
            assert job is not None
            m.set_state(job, JobState.FAILED, "broken")
        await m.journal.settled()
        assert m.totals().counts["failed"] == FILES
        with LockHolder(m.journal.path, HOLD) as holder:
            m.journal.update(ids[0], attempts=0)  # a write that waits for the lock
            async with Heartbeat() as beat:
                m.retry_failed()
                await until(lambda: not holder.held(), 4 * HOLD, "the lock to go")
        assert beat.longest < HOLD / 2, f"the loop stood still for {beat.longest:.1f}s"
        await asyncio.wait_for(m.controls.done(), 30)
        counts = m.totals().counts
        assert counts["queued"] == FILES and counts["failed"] == 0
        assert len(m.window(0, 100, JobState.QUEUED)) == FILES
        m.undrain()
        await asyncio.wait_for(m.wait_idle(), 60)
        assert m.totals().counts["done"] == FILES


async def test_a_verb_asked_while_a_bulk_verb_waits_comes_after_it(tmp_path: Path) -> None:
    tiny_files(tmp_path / "src", FILES)
    events: list[Event] = []
    async with manager(FakeServer(), tmp_path / "state", events) as m:
        m.drain()
        await m.add_paths([str(tmp_path / "src")])
        await m.journal.settled()
        ids = [j.id for j in m.window(0, 100)]
        last = ids[-1]  # a row only
        assert last not in m.jobs
        with LockHolder(m.journal.path, HOLD) as holder:
            m.journal.update(ids[0], attempts=0)  # a write that waits for the lock
            m.pause_all()
            m.resume(last)  # asked after the pause (whose rows wait): it must win
            await until(lambda: not holder.held(), 4 * HOLD, "the lock to go")
        await asyncio.wait_for(m.controls.done(), 30)
        job = m.get(last)
        assert job is not None and job.state == JobState.QUEUED
        assert m.totals().counts["paused"] == FILES - 1


async def test_nothing_starts_while_a_pause_alls_rows_wait_for_the_journal(
    tmp_path: Path,
) -> None:
    tiny_files(tmp_path / "src", FILES)
    events: list[Event] = []
    async with manager(FakeServer(), tmp_path / "state", events) as m:
        m.drain()
        await m.add_paths([str(tmp_path / "src")])
        await m.journal.settled()
        [first] = m.window(0, 1)
        with LockHolder(m.journal.path, HOLD) as holder:
            m.journal.update(first.id, attempts=0)  # a write that waits for the lock
            m.undrain()  # dispatch waits for that write
            m.pause_all()  # the jobs in memory now, the rows once the lock goes
            await until(lambda: not holder.held(), 4 * HOLD, "the lock to go")
        await asyncio.wait_for(m.controls.done(), 30)
        await asyncio.wait_for(m.wait_idle(), 30)
        assert not done(events)  # no queued row was started before its pause landed
        assert m.totals().counts["paused"] == FILES


async def test_a_fatal_stop_with_the_journal_locked_elsewhere_keeps_the_loop_turning(
    tmp_path: Path,
) -> None:
    tiny_files(tmp_path / "src", FILES)
    events: list[Event] = []
    async with manager(FakeServer(), tmp_path / "state", events) as m:
        m.drain()
        await m.add_paths([str(tmp_path / "src")])
        await m.journal.settled()
        [first] = m.window(0, 1)
        with LockHolder(m.journal.path, HOLD) as holder:
            m.journal.update(first.id, attempts=0)  # a write that waits for the lock
            async with Heartbeat() as beat:
                m.runner.fatal(AuthError("the token was refused"))  # every queued job stops
                await until(lambda: not holder.held(), 4 * HOLD, "the lock to go")
        assert beat.longest < HOLD / 2, f"the loop stood still for {beat.longest:.1f}s"
        await asyncio.wait_for(m.controls.done(), 30)
        assert m.totals().counts["paused"] == FILES
        assert any(isinstance(e, FatalStop) for e in events)
