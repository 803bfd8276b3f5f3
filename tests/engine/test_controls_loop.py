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
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from synapse_tui.engine import scheduler
from synapse_tui.engine.errors import AuthError
from synapse_tui.engine.events import Event, FatalStop, JobState
from synapse_tui.engine.scheduler import UploadManager
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


@dataclass
class Queued:
    m: UploadManager
    events: list[Event]
    ids: list[int]  # the jobs' ids, in the queue's order


@pytest.fixture
async def queued(tmp_path: Path) -> AsyncIterator[Queued]:
    """FILES tiny files queued in a drained manager (nothing starts), their rows written."""
    tiny_files(tmp_path / "src", FILES)
    events: list[Event] = []
    async with manager(FakeServer(), tmp_path / "state", events) as m:
        m.drain()
        await m.add_paths([str(tmp_path / "src")])
        await m.journal.settled()
        ids = [j.id for j in m.window(0, 100)]
        assert len(ids) == FILES
        yield Queued(m, events, ids)


@contextlib.contextmanager
def locked_elsewhere(m: UploadManager, job_id: int) -> Iterator[LockHolder]:
    """Another process holds the journal's write lock for HOLD seconds, and a write of
    this manager already waits behind it (as the verbs' rows then do)."""
    with LockHolder(m.journal.path, HOLD) as holder:
        m.journal.update(job_id, attempts=0)  # a write that waits for the lock
        yield holder


async def lock_gone(holder: LockHolder) -> None:
    await until(lambda: not holder.held(), 4 * HOLD, "the lock to go")


async def turning_while_locked(m: UploadManager, job_id: int, verb: Callable[[], object]) -> None:
    """`verb()` while another process holds the lock (see locked_elsewhere): the loop keeps
    turning until the lock goes, the verb's rows waiting meanwhile."""
    with locked_elsewhere(m, job_id) as holder:
        async with Heartbeat() as beat:
            verb()
            await lock_gone(holder)
    assert beat.longest < HOLD / 2, f"the loop stood still for {beat.longest:.1f}s"


async def test_pause_all_with_the_journal_locked_elsewhere_keeps_the_loop_turning(
    queued: Queued,
) -> None:
    m = queued.m

    def pause_all() -> None:
        m.pause_all()
        # The jobs in memory are paused at once; the rows wait for the journal.
        assert m.jobs and all(j.state == JobState.PAUSED for j in m.jobs.values())

    await turning_while_locked(m, queued.ids[0], pause_all)
    await asyncio.wait_for(m.controls.done(), 30)
    counts = m.totals().counts
    assert counts["paused"] == FILES and counts["queued"] == 0
    assert len(m.window(0, 100, JobState.PAUSED)) == FILES  # the rows say so too


async def test_retry_failed_with_the_journal_locked_elsewhere_keeps_the_loop_turning(
    queued: Queued,
) -> None:
    m, ids = queued.m, queued.ids
    for job_id in ids:  # every job failed (and left memory: rows only)
        job = m.get(job_id)
        assert job is not None
        m.set_state(job, JobState.FAILED, "broken")
    await m.journal.settled()
    assert m.totals().counts["failed"] == FILES
    await turning_while_locked(m, ids[0], m.retry_failed)
    await asyncio.wait_for(m.controls.done(), 30)
    counts = m.totals().counts
    assert counts["queued"] == FILES and counts["failed"] == 0
    assert len(m.window(0, 100, JobState.QUEUED)) == FILES
    m.undrain()
    await asyncio.wait_for(m.wait_idle(), 60)
    assert m.totals().counts["done"] == FILES


async def test_a_verb_asked_while_a_bulk_verb_waits_comes_after_it(queued: Queued) -> None:
    m, ids = queued.m, queued.ids
    last = ids[-1]  # a row only
    assert last not in m.jobs
    with locked_elsewhere(m, ids[0]) as holder:
        m.pause_all()
        m.resume(last)  # asked after the pause (whose rows wait): it must win
        await lock_gone(holder)
    await asyncio.wait_for(m.controls.done(), 30)
    job = m.get(last)
    assert job is not None and job.state == JobState.QUEUED
    assert m.totals().counts["paused"] == FILES - 1


async def test_nothing_starts_while_a_pause_alls_rows_wait_for_the_journal(
    queued: Queued,
) -> None:
    m = queued.m
    with locked_elsewhere(m, queued.ids[0]) as holder:
        m.undrain()  # dispatch waits for that write
        m.pause_all()  # the jobs in memory now, the rows once the lock goes
        await lock_gone(holder)
    await asyncio.wait_for(m.controls.done(), 30)
    await asyncio.wait_for(m.wait_idle(), 30)
    assert not done(queued.events)  # no queued row was started before its pause landed
    assert m.totals().counts["paused"] == FILES


async def test_a_fatal_stop_with_the_journal_locked_elsewhere_keeps_the_loop_turning(
    queued: Queued,
) -> None:
    m = queued.m
    refused = AuthError("the token was refused")
    await turning_while_locked(m, queued.ids[0], lambda: m.runner.fatal(refused))  # all stop
    await asyncio.wait_for(m.controls.done(), 30)
    assert m.totals().counts["paused"] == FILES
    assert any(isinstance(e, FatalStop) for e in queued.events)
