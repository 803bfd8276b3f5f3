"""A scan's intake leaves the loop to uploads while enough is queued ahead of them
(counted pauses, no timing): engine/pacing.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from synapse_tui.engine import pacing, scheduler
from synapse_tui.engine.journal import Journal
from synapse_tui.engine.protocol import Credentials, ProtocolClient
from synapse_tui.engine.scheduler import EngineOptions, UploadManager
from tests.engine.fakeserver import ROOT, FakeServer
from tests.engine.test_scale import tiny_files
from tests.service.test_tick_work import Held, until

LOOKAHEAD = 8
BATCH = 64  # files per scan batch (engine/scan.py's default)


@pytest.fixture(autouse=True)
def small_lookahead(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scheduler, "LOOKAHEAD", LOOKAHEAD)


class Pauses:
    """The pacer's sleep, recorded; `hold` makes it wait until released (a pause in
    progress, to cancel the scan in)."""

    def __init__(self) -> None:
        self.asked: list[float] = []
        self.hold = False
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def __call__(self, seconds: float) -> None:
        self.asked.append(seconds)
        self.entered.set()
        if self.hold:
            await self.release.wait()
        await asyncio.sleep(0)


@asynccontextmanager
async def held_engine(state: Path, held: Held) -> AsyncIterator[tuple[UploadManager, Pauses]]:
    client = ProtocolClient(
        ROOT, Credentials(access_token="t0ken"), transport=httpx.MockTransport(held.handle)
    )
    options = EngineOptions(host=ROOT, concurrency=2, settle_delay=0.0, strategy="chunked")
    m = UploadManager(client, Journal(state), options)
    pauses = Pauses()
    m.intake.pacer.sleep = pauses
    async with m:
        yield m, pauses
    m.journal.close()


async def test_a_scan_pauses_after_each_batch_while_uploads_run_and_work_waits(
    tmp_path: Path,
) -> None:
    tiny_files(tmp_path / "first", 20)
    tiny_files(tmp_path / "big", 10 * BATCH)
    held = Held(FakeServer())
    async with held_engine(tmp_path / "state", held) as (m, pauses):
        await m.add_paths([str(tmp_path / "first")])
        await until(lambda: held.waiting == 2, "two uploads in flight")
        assert pauses.asked == []  # the queue was short: the scan fed the uploads flat out
        totals = await m.add_paths([str(tmp_path / "big")])
        assert totals.files == 10 * BATCH  # every file queued all the same
        assert m.totals().counts["queued"] + 2 == 20 + 10 * BATCH
    assert m.intake.pacer.pauses == len(pauses.asked) == 10  # one after each batch
    assert all(0 < s <= pacing.MAX_PAUSE for s in pauses.asked), pauses.asked


async def test_a_scan_with_nothing_uploading_never_pauses(tmp_path: Path) -> None:
    tiny_files(tmp_path / "big", 10 * BATCH)
    held = Held(FakeServer())
    async with held_engine(tmp_path / "state", held) as (m, pauses):
        m.drain()  # nothing starts: the scan is all the engine does
        totals = await m.add_paths([str(tmp_path / "big")])
        assert totals.files == 10 * BATCH
    assert pauses.asked == [] and m.intake.pacer.pauses == 0


async def test_a_pause_is_in_proportion_to_the_batch_and_capped(tmp_path: Path) -> None:
    tiny_files(tmp_path / "first", 20)
    held = Held(FakeServer())
    async with held_engine(tmp_path / "state", held) as (m, _):
        pacer = m.intake.pacer
        assert pacer.pause_for(0.01) == 0  # nothing uploads yet
        await m.add_paths([str(tmp_path / "first")])
        await until(lambda: held.waiting == 2, "two uploads in flight")
        assert pacer.pause_for(0.01) == pytest.approx(
            0.01 * (1 - pacing.SCAN_SHARE) / pacing.SCAN_SHARE
        )
        assert pacer.pause_for(60.0) == pacing.MAX_PAUSE
        m.pause_all()  # nothing queued any more: no reason to hold the scan back
        await until(lambda: not m.active(), "the pauses")
        assert pacer.pause_for(0.01) == 0


async def test_a_scan_cancelled_in_a_pause_ends_and_keeps_what_it_queued(tmp_path: Path) -> None:
    tiny_files(tmp_path / "first", 20)
    tiny_files(tmp_path / "big", 10 * BATCH)
    held = Held(FakeServer())
    async with held_engine(tmp_path / "state", held) as (m, pauses):
        await m.add_paths([str(tmp_path / "first")])
        await until(lambda: held.waiting == 2, "two uploads in flight")
        pauses.hold = True
        task = asyncio.create_task(m.add_paths([str(tmp_path / "big")]))
        await asyncio.wait_for(pauses.entered.wait(), 60)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert m.intake.scans == 0  # the scan is over, not waiting anywhere
        assert m.totals().files_total == 20 + BATCH  # its first batch stays queued
