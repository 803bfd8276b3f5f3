"""The engine's `status` shows a job waiting for its data unit as registering: it is a
journal row in the engine (engine/lookahead.py), not a job held in memory, and no lock
holds it, yet the engine drives it (its units step is to come): not "interrupted"."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from synapse_tui.engine.events import JobState
from synapse_tui.engine.journal import Journal
from synapse_tui.service import queries
from synapse_tui.service.queries import status_jobs
from synapse_tui.service.store import EngineStore
from synapse_tui.service.wire import StatusJobs
from tests.engine.test_collection_bounded import gate_units, lowered, stem_plan, stems
from tests.engine.test_collections import server
from tests.service.test_tick_work import until

__all__ = ["server"]  # the fixture, imported for these tests


async def test_status_shows_the_jobs_waiting_for_their_unit_as_registering(
    server: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if queries._OFD_GETLK is None:
        pytest.skip("no OFD lock query here: every row counts as driven")
    url, _ = server
    gate = gate_units(monkeypatch)
    n = 6
    stems(tmp_path / "data", n, twins=0)
    plan = await stem_plan(url)
    state = tmp_path / "st"
    async with lowered(url, state, []) as m:
        await m.add_paths([str(tmp_path / "data")], plan=plan)
        await until(
            lambda: m.counters.count[JobState.REGISTERING] == 2 * n and not m.active(),
            "every file registered, waiting for its unit",
        )
        await m.journal.settled()
        store = EngineStore(state / Journal.FILENAME)
        service = cast(Any, SimpleNamespace(store=store, manager=m, state_dir=state))
        try:
            rows = status_jobs(service, StatusJobs(limit=100))["jobs"]
        finally:
            store.close()
        assert len(rows) == 2 * n
        assert {r["state"] for r in rows} == {"registering"}
        gate.set()
        await m.wait_idle()
