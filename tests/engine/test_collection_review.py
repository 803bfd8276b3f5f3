"""Review of the bounded collection run: the verbs on every job reach the jobs waiting for
their data unit, which are journal rows now, not jobs in memory."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from synapse_tui.engine import collections
from synapse_tui.engine.collections import Registrar
from synapse_tui.engine.events import Event, JobState
from synapse_tui.engine.journal import Journal
from tests.engine.test_collection_bounded import (
    PER_REQUEST,
    all_units,
    check_units,
    lowered,
    stems,
)
from tests.engine.test_collections import plan_for, server

__all__ = ["server"]  # the fixture, imported for these tests


async def test_pause_all_pauses_the_jobs_waiting_for_their_unit_out_of_memory(
    server: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pause all, as when they were held in memory: no unit is made until they resume."""
    url, _ = server
    monkeypatch.setattr(collections, "UNITS_PER_REQUEST", PER_REQUEST)
    gate = asyncio.Event()
    real = Registrar.units

    async def gated(self: Registrar) -> None:
        await gate.wait()
        await real(self)

    monkeypatch.setattr(Registrar, "units", gated)
    n = 12
    files = stems(tmp_path / "data", n, twins=0)
    plan = await plan_for(url, group_by_stem=True, spec_map={"jpg": "image", "json": "meta"})
    events: list[Event] = []
    state = tmp_path / "st"
    async with lowered(url, state, events) as m:
        await m.add_paths([str(tmp_path / "data")], plan=plan)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while m.counters.count[JobState.REGISTERING] < 2 * n or m.active():
            assert loop.time() < deadline, "the uploads did not all finish"
            await asyncio.sleep(0.02)
        await m.journal.settled()
        m.pause_all()
        gate.set()
        await m.wait_idle()
        await m.journal.settled()
        assert all_units(url) == [], "units made for paused jobs"
        assert m.counters.count[JobState.PAUSED] == 2 * n
        assert {j.state for j in Journal(state).jobs()} == {JobState.PAUSED}
        m.resume_all()
        await m.wait_idle()
    check_units(url, files)
