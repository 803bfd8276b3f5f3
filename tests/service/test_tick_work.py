"""A tick's work (engine totals, each batch's totals and settle check) does not grow with
the queue: counted in Python lines run and SQLite steps, not timed."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import pytest

from synapse_tui.engine import scheduler
from synapse_tui.engine.events import JobState
from synapse_tui.engine.journal import Journal
from synapse_tui.engine.protocol import Credentials, ProtocolClient
from synapse_tui.engine.scheduler import EngineOptions, UploadManager
from synapse_tui.service.peer import Peer
from synapse_tui.service.routing import CURRENT_BATCH, Batch, Router
from tests.engine.fakeserver import ROOT, FakeServer
from tests.engine.test_scale import tiny_files

LOOKAHEAD = 8


@pytest.fixture(autouse=True)
def small_lookahead(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scheduler, "LOOKAHEAD", LOOKAHEAD)


class Follower(Peer):
    """A client following a batch: keeps what it is sent (no socket)."""

    def __init__(self) -> None:  # no sender task: nothing is written anywhere
        self.number = 1
        self.role = "upload"
        self.subscribed = False
        self.batches: set[int] = set()
        self.closed = asyncio.Event()
        self.sent: list[dict[str, Any]] = []

    @property
    def totals(self) -> list[dict[str, Any]]:
        return [obj for obj in self.sent if obj.get("event") == "progress"]

    def send(self, obj: dict[str, Any], coalesce: object = None) -> None:
        self.sent.append(obj)


@dataclass
class Work:
    """Python lines run (every frame) and SQLite VM steps (x10) on the journal's
    connection while inside the block."""

    db: sqlite3.Connection
    lines: int = 0
    steps: int = 0

    def _trace(self, frame: FrameType, event: str, arg: object) -> Any:
        if event == "line":
            self.lines += 1
        return self._trace

    def _step(self) -> int:
        self.steps += 1
        return 0

    def __enter__(self) -> Work:
        self.db.set_progress_handler(self._step, 10)
        sys.settrace(self._trace)
        return self

    def __exit__(self, *exc: object) -> None:
        sys.settrace(None)
        self.db.set_progress_handler(None, 0)


class Held:
    """A transport that answers `allow` requests, the others wait until it is raised:
    uploads stay in flight, as long as the test wants."""

    def __init__(self, server: FakeServer, allow: int = 0) -> None:
        self.server = server
        self.allow = allow
        self.answered = 0
        self.waiting = 0
        self._more = asyncio.Condition()

    async def let(self, allow: int) -> None:
        async with self._more:
            self.allow = allow
            self._more.notify_all()

    async def handle(self, request: httpx.Request) -> httpx.Response:
        async with self._more:
            self.waiting += 1
            try:
                await self._more.wait_for(lambda: self.answered < self.allow)
            finally:
                self.waiting -= 1
            self.answered += 1
        return self.server.handle(request)


@asynccontextmanager
async def engine(state: Path, held: Held) -> AsyncIterator[tuple[UploadManager, Router]]:
    transport = httpx.MockTransport(held.handle)
    client = ProtocolClient(ROOT, Credentials(access_token="t0ken"), transport=transport)
    options = EngineOptions(
        host=ROOT,
        concurrency=2,
        backoff_base=0.001,
        backoff_cap=0.002,
        settle_delay=0.0,
        strategy="chunked",
    )
    options.tick = 3600.0  # ticks are run by hand below
    m = UploadManager(client, Journal(state), options)
    router = Router()
    router.manager = m
    m.subscribe(router)
    m.on_held = router.adopt
    async with m:
        yield m, router
    m.journal.close()


async def until(condition: Callable[[], object], what: str, limit: float = 60.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not condition():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def in_batch(batch: Batch, work: Callable[[], Awaitable[object]]) -> None:
    token = CURRENT_BATCH.set(batch)
    try:
        await work()
    finally:
        CURRENT_BATCH.reset(token)


def tick(m: UploadManager, router: Router) -> None:
    """What the engine's ticker does with no job progress to report, and the settle checks
    the router schedules on it (run now instead of at the loop's next turn)."""
    m.views.emit_totals()
    router._run_checks()


async def tick_work(tmp_path: Path, files: int) -> tuple[Work, int]:
    """One tick with `files` queued in a followed batch, two of them uploading (held)
    and a second followed batch waiting behind: its work, and the followed totals' count."""
    tiny_files(tmp_path / "a", files)
    tiny_files(tmp_path / "b", 20)
    held = Held(FakeServer())
    async with engine(tmp_path / "state", held) as (m, router):
        first, second = router.new_batch(Follower()), router.new_batch(Follower())
        await in_batch(first, lambda: m.add_paths([str(tmp_path / "a")]))
        await in_batch(second, lambda: m.add_paths([str(tmp_path / "b")]))
        await until(lambda: held.waiting == 2, "two uploads in flight")
        tick(m, router)  # warm: the same path as measured
        with Work(m.journal.connection) as work:
            tick(m, router)
        assert not first.done and not second.done  # both checked, neither settled
        assert isinstance(first.peer, Follower)
        last = first.peer.totals[-1]
        assert last["files_total"] == files and last["bytes_total"] == files * 64
    return work, last["files_total"]


async def test_a_tick_costs_the_same_at_50_and_at_5000_queued(tmp_path: Path) -> None:
    small, _ = await tick_work(tmp_path / "small", 50)
    big, total = await tick_work(tmp_path / "big", 5_000)
    assert total == 5_000
    # The same jobs in memory (look-ahead + 2 uploading) and the same two batches: the
    # work may differ by a few lines (digits, the meter), never by anything per job.
    assert big.lines <= small.lines * 1.1 + 50, (small.lines, big.lines)
    assert big.steps <= small.steps * 1.1 + 50, (small.steps, big.steps)
    assert small.lines > 100  # it did count the tick


def truth(state: Path, ids: set[int]) -> dict[str, int]:
    """Counts by state of the journal's rows among `ids` (the test's ground truth)."""
    journal = Journal(state)
    try:
        rows = [r for r in journal.jobs() if r.id in ids]
    finally:
        journal.close()
    return {s.value: n for s in JobState if (n := sum(1 for r in rows if r.state == s))}


def batch_counts(batch: Batch) -> dict[str, int]:
    return {s.value: n for s, n in batch.counters.count.items() if n}


def live(m: UploadManager, state: Path, ids: set[int]) -> dict[str, int]:
    """The truth with the running jobs as they are in memory (journaled late)."""
    running = {j.id: j.state.value for j in m.active()}
    counts = truth(state, ids - set(running))
    for value in running.values():
        counts[value] = counts.get(value, 0) + 1
    return counts


async def test_batch_totals_stay_right_through_pause_cancel_retry_and_restart(
    tmp_path: Path,
) -> None:
    paths = tiny_files(tmp_path / "src", 60)
    state = tmp_path / "state"
    held = Held(FakeServer())
    async with engine(state, held) as (m, router):
        follower = Follower()
        batch = router.new_batch(follower)
        await in_batch(batch, lambda: m.add_paths([str(tmp_path / "src")]))
        await until(lambda: held.waiting == 2, "two uploads in flight")
        ids = {j.id for j in m.window(0, 100)}
        order = sorted(ids)
        assert len(ids) == 60
        m.cancel(order[-1])
        m.pause(order[-2])
        await m.journal.settled()
        counts = batch_counts(batch)
        assert counts == live(m, state, ids)
        assert counts["queued"] == 56 and counts["paused"] == counts["cancelled"] == 1
        away = tmp_path / "away"
        away.mkdir()
        for path in paths[10:14]:
            path.rename(away / path.name)  # gone when they are read: they fail
        await held.let(24)  # then two wait again: part of the batch is done
        await until(lambda: held.waiting == 2 and held.answered == 24, "two held again")
        await m.journal.settled()
        counts = batch_counts(batch)
        assert counts == live(m, state, ids), counts
        assert counts["done"] == 24 and counts["failed"] == 4 and counts["queued"] == 28
        total = router.batch_totals(batch)
        assert total.files_total == 60 and total.files_done == 24
        assert total.bytes_total == 59 * 64  # the cancelled one counts for nothing
        assert total.bytes_done == 24 * 64 + sum(j.sent for j in m.active())
        for path in paths[10:14]:
            (away / path.name).rename(path)  # back, unchanged
        assert m.retry_failed() == 4
        await m.journal.settled()
        counts = batch_counts(batch)
        assert counts == live(m, state, ids) and counts["queued"] == 32, counts
        m.pause_all()  # nothing of the batch will start unasked: it settles
        await until(lambda: batch.done, "the batch to settle")
        await m.journal.settled()
        counts = batch_counts(batch)
        assert counts == truth(state, ids) == {"done": 24, "paused": 35, "cancelled": 1}
        assert follower.sent[-1]["event"] == "batch_done" and follower.sent[-1]["left"] == 35
    # The engine restarts: a new manager and router on the journal, `resume` in a batch.
    unfinished = 35
    held = Held(FakeServer())
    async with engine(state, held) as (m, router):
        resumed = router.new_batch(Follower())
        token = CURRENT_BATCH.set(resumed)
        try:
            assert m.resume_unfinished() == unfinished
        finally:
            CURRENT_BATCH.reset(token)
        total = router.batch_totals(resumed)
        assert (total.files_total, total.files_done) == (unfinished, 0)
        assert total.bytes_total == unfinished * 64
        await held.let(10**6)
        await until(lambda: resumed.done, "the resumed batch to settle")
        assert batch_counts(resumed) == {"done": unfinished}
        total = router.batch_totals(resumed)
        assert total.bytes_done == total.bytes_total == unfinished * 64
        await m.journal.settled()
    assert truth(state, ids) == {"done": 59, "cancelled": 1}
