"""A manager closed while its data units step waits for the server's answer: the step ends
with the manager (nothing of it runs on, or writes, after `close`), its jobs are paused,
and the next run finds the units the server made rather than making them again."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from synapse_tui.engine import collections
from synapse_tui.engine.events import Event, JobState
from synapse_tui.engine.journal import Journal
from synapse_tui.engine.protocol import ProtocolClient
from tests.engine.test_collection_bounded import (
    PER_REQUEST,
    all_units,
    all_waiting_for_units,
    check_units,
    lowered,
    stem_plan,
    stems,
)
from tests.engine.test_collections import server

__all__ = ["server"]  # the fixture, imported for these tests


async def test_closing_while_the_units_request_is_unanswered_ends_the_step(
    server: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _ = server
    monkeypatch.setattr(collections, "UNITS_PER_REQUEST", PER_REQUEST)
    sent = asyncio.Event()
    answer = asyncio.Event()
    real = ProtocolClient.post_json

    async def slow_answer(self: ProtocolClient, path: str, body: Any, **kw: Any) -> Any:
        got = await real(self, path, body, **kw)  # the server makes the units
        if path == "data_units/" and not answer.is_set():
            sent.set()
            await answer.wait()  # ... and its answer is slow to come back
        return got

    monkeypatch.setattr(ProtocolClient, "post_json", slow_answer)
    n = 4
    files = stems(tmp_path / "data", n, twins=0)
    plan = await stem_plan(url)
    state = tmp_path / "st"
    events: list[Event] = []
    async with lowered(url, state, events) as m:
        await m.add_paths([str(tmp_path / "data")], plan=plan)
        await all_waiting_for_units(m, 2 * n)
        await asyncio.wait_for(sent.wait(), 30)
        units_task = m.runner.units_task
        assert units_task is not None and not units_task.done()
    # closed: the step ended with the manager, before the answer came
    assert units_task.done()
    seen = len(events)
    answer.set()
    for _ in range(5):
        await asyncio.sleep(0)
    assert events[seen:] == [], "the units step went on after close"
    made = len(all_units(url))
    assert made == n  # the server did make them
    jobs = Journal(state).jobs()
    assert {(j.state, j.last_error) for j in jobs} == {(JobState.PAUSED, "interrupted")}

    # The next run finds the units the server made; none is made twice.
    async with lowered(url, state, []) as m2:
        assert m2.resume_unfinished() == 2 * n
        await m2.wait_idle()
        assert m2.counters.count[JobState.DONE] == 2 * n
    assert len(all_units(url)) == n
    check_units(url, files)
