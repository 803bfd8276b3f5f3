"""Review of the bounded collection run (r8coll): the jobs waiting for their data unit are
journal rows now, and every verb, view and step that met them in memory reaches them there."""

from __future__ import annotations

import asyncio
import itertools
import os
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from synapse_tui.engine import collections, queue_view
from synapse_tui.engine.collections import Registrar
from synapse_tui.engine.errors import ProtocolError
from synapse_tui.engine.events import Event, JobFailed, JobState
from synapse_tui.engine.journal import Journal
from tests.engine.test_collection_bounded import (
    PER_REQUEST,
    all_units,
    all_waiting_for_units,
    check_units,
    gate_units,
    lose_all,
    lowered,
    stem_plan,
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
    gate = gate_units(monkeypatch)
    n = 12
    files = stems(tmp_path / "data", n, twins=0)
    plan = await stem_plan(url)
    events: list[Event] = []
    state = tmp_path / "st"
    async with lowered(url, state, events) as m:
        await m.add_paths([str(tmp_path / "data")], plan=plan)
        await all_waiting_for_units(m, 2 * n)
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


async def test_lost_units_of_equal_groups_on_two_pages_are_each_found_or_made_once(
    server: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two files of one content and stem in two folders are two units (twins alike get
    their own). Both sent before a crash, one of them made: on resume each group is looked
    for on its own page, and the unit the first one found is not the second one's."""
    url, root = server
    monkeypatch.setattr(collections, "UNITS_PER_REQUEST", 1)  # a page per group
    data = tmp_path / "data"
    for folder in ("a", "b"):
        (data / folder).mkdir(parents=True)
        (data / folder / "x.jpg").write_bytes(b"the same picture in two folders")
    plan = await plan_for(url, spec="image")
    state = tmp_path / "st"
    async with lowered(url, state, []) as m:
        await m.add_paths([str(data)], plan=plan)
        await m.wait_idle()
    assert len(all_units(url)) == 2
    lose_all(state)
    db = sqlite3.connect(next(root.glob("*.sqlite3")))
    db.execute("DELETE FROM data_units WHERE id = (SELECT max(id) FROM data_units)")
    db.commit()
    db.close()
    events: list[Event] = []
    async with lowered(url, state, events) as m:
        assert m.resume_unfinished() == 2
        await m.wait_idle()
    assert not [e for e in events if isinstance(e, JobFailed)]
    units = all_units(url)
    assert len(units) == 2, "the second group took the unit the first one found"
    recorded = Counter(j.steps.unit_id for j in Journal(state).jobs())
    assert recorded == Counter({u["id"]: 1 for u in units})


async def test_the_queue_view_filtered_by_registering_shows_the_jobs_waiting_for_a_unit(
    server: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dashboard's and `list`'s filter by state: the jobs waiting for their unit are
    rows now, and the view of that state is read from the journal, as its total counts."""
    url, _ = server
    gate = gate_units(monkeypatch)
    n = 12
    files = stems(tmp_path / "data", n, twins=0)
    plan = await stem_plan(url)
    async with lowered(url, tmp_path / "st", []) as m:
        await m.add_paths([str(tmp_path / "data")], plan=plan)
        await all_waiting_for_units(m, 2 * n)
        await m.journal.settled()
        answer = queue_view.window(m, queue_view.Ask(limit=100, state="registering"))
        assert answer.total == m.counters.count[JobState.REGISTERING] == 2 * n
        assert len(answer.jobs) == 2 * n
        assert {j.state for j in answer.jobs} == {JobState.REGISTERING}
        gate.set()
        await m.wait_idle()
    check_units(url, files)


async def test_failing_the_jobs_waiting_for_their_unit_lets_the_loop_go_on_between_pages(
    server: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The units step failed: its waiting rows fail a page at a time, the loop going on
    between pages and the journal's writer queue given room (a million rows are seconds of
    decoding and a million writes), as the step's own collection of them does."""
    url, _ = server
    monkeypatch.setattr(collections, "PAGE", 4)
    gate = asyncio.Event()

    async def refused(self: Registrar) -> None:
        await gate.wait()
        raise ProtocolError("the data unit answer makes no sense")

    monkeypatch.setattr(Registrar, "units", refused)
    n = 12
    stems(tmp_path / "data", n, twins=0)
    plan = await stem_plan(url)
    events: list[Event] = []
    async with lowered(url, tmp_path / "st", events) as m:
        await m.add_paths([str(tmp_path / "data")], plan=plan)
        await all_waiting_for_units(m, 2 * n)
        turns = [0]
        seen: list[int] = []

        async def spin() -> None:
            while True:
                turns[0] += 1
                await asyncio.sleep(0)

        real = m.session.in_state

        def in_state(*args: Any, **kwargs: Any) -> list[Any]:
            seen.append(turns[0])
            return real(*args, **kwargs)

        monkeypatch.setattr(m.session, "in_state", in_state)
        spinner = asyncio.create_task(spin())
        try:
            gate.set()
            await m.wait_idle()
        finally:
            spinner.cancel()
        assert m.counters.count[JobState.FAILED] == 2 * n
        assert len(seen) >= 2 * n // 4
        assert all(b > a for a, b in itertools.pairwise(seen)), seen
    failed = [e for e in events if isinstance(e, JobFailed)]
    assert len(failed) == 2 * n and all("data unit:" in e.error for e in failed)


async def test_a_file_name_not_in_utf8_gets_its_unit_and_does_not_stop_the_others(
    server: tuple[str, Path], tmp_path: Path
) -> None:
    """The units step's work list is an SQLite table: a unit key made from a file name that
    is not UTF-8 (surrogate escapes) goes in as it is kept, and every file gets its unit."""
    url, _ = server
    data = tmp_path / "data"
    data.mkdir()
    odd = os.fsencode(data) + b"/caf\xe9.jpg"  # Latin-1: not UTF-8
    try:
        with open(odd, "wb") as f:
            f.write(b"a picture with a Latin-1 name")
    except OSError as exc:
        pytest.skip(f"this file system refuses a name that is not UTF-8: {exc}")
    for i in range(3):
        (data / f"p{i}.jpg").write_bytes(b"picture %d" % i)
    plan = await plan_for(url, spec="image")
    events: list[Event] = []
    state = tmp_path / "st"
    async with lowered(url, state, events) as m:
        await m.add_paths([str(data)], plan=plan)
        await m.wait_idle()
    assert not [e for e in events if isinstance(e, JobFailed)]
    assert len(all_units(url)) == 4
    assert {j.state for j in Journal(state).jobs()} == {JobState.DONE}


async def test_an_internal_error_of_the_units_step_fails_its_jobs_not_leaves_them_waiting(
    server: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug in the units step (here: a RuntimeError) is said and fails the jobs waiting
    (retry registers them): left registering, no step would run again for them and a batch
    of the background engine would wait for their units for ever."""
    url, _ = server

    async def broken(self: Registrar) -> None:
        await self.m.journal.settled()
        await self._collect()  # as the step does first: its work list read
        raise RuntimeError("a bug")

    monkeypatch.setattr(Registrar, "units", broken)
    n = 3
    stems(tmp_path / "data", n, twins=0)
    plan = await stem_plan(url)
    events: list[Event] = []
    async with lowered(url, tmp_path / "st", events) as m:
        await m.add_paths([str(tmp_path / "data")], plan=plan)
        await m.wait_idle()
        assert m.counters.count[JobState.REGISTERING] == 0
        assert m.counters.count[JobState.FAILED] == 2 * n
    failed = [e for e in events if isinstance(e, JobFailed)]
    assert len(failed) == 2 * n and all("internal error" in e.error for e in failed)
