"""Queueing or resuming while drained costs O(1) per file, not a pass over the jobs held."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from synapse_tui.engine.collections import Registrar
from synapse_tui.engine.events import Event
from synapse_tui.engine.job import Job
from tests.engine.fakeserver import FakeServer
from tests.engine.test_scale import tiny_files
from tests.engine.test_uploader import done, manager


async def test_a_drained_resume_does_not_walk_the_held_jobs_per_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tiny_files(tmp_path / "src", 500)
    async with manager(FakeServer(), tmp_path / "state", []) as m:
        m.drain()
        await m.add_paths([str(tmp_path / "src")])
    walks = 0
    original = Registrar._waiting_pages  # the walk over the jobs waiting for their unit

    def counted(self: Registrar) -> AsyncIterator[list[Job]]:
        nonlocal walks
        walks += 1
        return original(self)

    monkeypatch.setattr(Registrar, "_waiting_pages", counted)
    events: list[Event] = []
    async with manager(FakeServer(), tmp_path / "state", events) as m:
        m.drain()  # an engine restarted drained (the setting is kept), or a `configure`
        assert m.resume_unfinished() == 500
        assert walks == 0  # no job waits for a data unit: the counter says so at once
        m.undrain()
        await m.wait_idle()
    assert len(done(events)) == 500
