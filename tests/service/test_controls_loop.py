"""The engine's control commands while another process holds the journal's write lock do
not stop the engine's loop (issue 19): a batch's pause reads its rows once the writes
before them are in, and the settings the engine keeps (drain, pauses) are saved off the
loop (EngineStore.save waited up to its 10 s busy timeout on it)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, cast

import pytest

from synapse_tui.engine import scheduler
from synapse_tui.engine.events import Event, JobState
from synapse_tui.service import commands
from synapse_tui.service.routing import CURRENT_BATCH, Router
from synapse_tui.service.store import EngineStore
from synapse_tui.service.wire import Control
from tests.engine.fakeserver import FakeServer
from tests.engine.test_scale import tiny_files
from tests.engine.test_uploader import manager
from tests.harness.heartbeat import Heartbeat
from tests.harness.lock_holder import LockHolder, until

if TYPE_CHECKING:
    from synapse_tui.engine.scheduler import UploadManager
    from synapse_tui.service.daemon import EngineService
    from synapse_tui.service.peer import Peer

HOLD = 3.0  # seconds the other process keeps the write lock
FILES = 40


@pytest.fixture(autouse=True)
def small_lookahead(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scheduler, "LOOKAHEAD", 8)  # most jobs are rows only


def _peer() -> Peer:
    return cast("Peer", SimpleNamespace(batches=set(), send=lambda message: None))


async def _service(tmp_path: Path, m: UploadManager, router: Router) -> EngineService:
    m.subscribe(router)
    router.manager = m
    store = EngineStore(m.journal.path)
    return cast(
        "EngineService",
        SimpleNamespace(manager=m, journal=m.journal, store=store, stopping=None, router=router),
    )


async def test_a_drain_saved_with_the_journal_locked_elsewhere(tmp_path: Path) -> None:
    async with manager(FakeServer(), tmp_path / "state", []) as m:
        service = await _service(tmp_path, m, Router())
        assert service.store is not None
        with LockHolder(m.journal.path, HOLD) as holder:
            async with Heartbeat() as beat:
                drain = asyncio.create_task(
                    commands.handle(service, _peer(), Control(action="drain"))
                )
                await until(lambda: not holder.held(), 4 * HOLD, "the lock to go")
            assert beat.longest < HOLD / 2, f"the loop stood still for {beat.longest:.1f}s"
            assert await asyncio.wait_for(drain, 30) == {}
        assert service.store.settings()["draining"] is True
        service.store.close()


async def test_a_batch_paused_with_the_journal_locked_elsewhere(tmp_path: Path) -> None:
    tiny_files(tmp_path / "src", FILES)
    events: list[Event] = []
    router = Router()
    async with manager(FakeServer(), tmp_path / "state", events) as m:
        service = await _service(tmp_path, m, router)
        peer = _peer()
        m.drain()
        batch = router.new_batch(peer)
        token = CURRENT_BATCH.set(batch)
        try:
            await m.add_paths([str(tmp_path / "src")])
        finally:
            CURRENT_BATCH.reset(token)
        await m.journal.settled()
        with LockHolder(m.journal.path, HOLD) as holder:
            async with Heartbeat() as beat:
                pause = asyncio.create_task(
                    commands.handle(service, peer, Control(action="pause", batch=batch.id))
                )
                await until(lambda: not holder.held(), 4 * HOLD, "the lock to go")
            assert beat.longest < HOLD / 2, f"the loop stood still for {beat.longest:.1f}s"
            assert await asyncio.wait_for(pause, 30) == {"left": FILES}
        await m.journal.settled()
        assert m.totals().counts["paused"] == FILES
        assert len(m.window(0, 100, JobState.PAUSED)) == FILES
        assert service.store is not None
        service.store.close()
