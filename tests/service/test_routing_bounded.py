"""The engine service's router follows a batch of any size with no entry per file in memory."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from synapse_tui.engine import scheduler
from synapse_tui.engine.events import Event, JobState, TotalProgress
from synapse_tui.service.routing import CURRENT_BATCH, Batch, Router
from tests.engine.fakeserver import FakeServer
from tests.engine.test_scale import tiny_files
from tests.engine.test_uploader import done, manager

FILES = 3_000
LOOKAHEAD = 8


@pytest.fixture(autouse=True)
def small_lookahead(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scheduler, "LOOKAHEAD", LOOKAHEAD)


def entries(router: Router) -> int:
    """Items in every container the router and its batches keep in memory (not RSS: what
    would grow with the files of a batch)."""
    owners: list[object] = [router, *router.batches.values()]
    total = 0
    for owner in owners:
        for value in vars(owner).values():
            if isinstance(value, dict | set | list | frozenset):
                total += len(value)
    return total


async def until_settled(batch: Batch) -> None:
    """Until the router's settle check has seen `batch` through (it runs after the last
    emit sequence); fails after 10 s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while not batch.done:
        assert loop.time() < deadline, "the batch never settled"
        await asyncio.sleep(0.01)


async def test_a_big_batch_keeps_no_entry_per_file_and_settles(tmp_path: Path) -> None:
    tiny_files(tmp_path / "src", FILES)
    events: list[Event] = []
    router = Router()
    peak = 0

    def watch(event: Event) -> None:
        nonlocal peak
        if isinstance(event, TotalProgress):
            peak = max(peak, entries(router))

    async with manager(FakeServer(), tmp_path / "state", events, concurrency=4) as m:
        router.manager = m
        m.subscribe(router)
        m.subscribe(watch)
        batch: Batch = router.new_batch(None)
        m.drain()  # queued, none started: the whole batch waits, most of it as rows
        token = CURRENT_BATCH.set(batch)
        try:
            await m.add_paths([str(tmp_path / "src")])
        finally:
            CURRENT_BATCH.reset(token)
        queued_entries = entries(router)
        assert queued_entries <= 10, queued_entries  # a batch and a few active jobs at most
        assert router.left(batch) == FILES
        assert sum(1 for _ in router.unfinished(batch)) == FILES  # what a batch pause walks
        totals = router.batch_totals(batch)
        assert totals.files_total == FILES and totals.bytes_total == FILES * 64
        assert router.settled(batch)  # drained: nothing of it will start unasked

        m.undrain()
        await m.wait_idle()
        await until_settled(batch)
    assert len(done(events)) == FILES
    assert peak <= 10 + 4 * scheduler.SMALL_BOOST, peak  # active jobs only, whatever the size
    assert batch.counters.count[JobState.DONE] == FILES
    assert batch.counters.bytes_done() == FILES * 64
    assert router.left(batch) == 0
    assert entries(router) == 0  # the finished batch is forgotten


async def test_a_job_added_again_moves_to_the_adding_batch(tmp_path: Path) -> None:
    tiny_files(tmp_path / "src", 20)
    events: list[Event] = []
    router = Router()
    async with manager(FakeServer(), tmp_path / "state", events) as m:
        router.manager = m
        m.subscribe(router)
        m.on_held = router.adopt
        m.drain()
        first, second = router.new_batch(None), router.new_batch(None)
        for batch in (first, second):
            token = CURRENT_BATCH.set(batch)
            try:
                await m.add_paths([str(tmp_path / "src")])
            finally:
                CURRENT_BATCH.reset(token)
        # The second batch follows what it added again; the first no longer counts it twice.
        assert router.left(first) + router.left(second) == 20
        assert router.left(second) >= 1
        moved = next(iter(router.unfinished(second)))
        assert router.owner(moved) is second
