"""Looking for lost units never waits, on the engine's loop, for the journal's writer: a
unit found is recorded (a write), and the next group's check of whether a unit is
another's reads as committed. Were it to wait for that write, another process holding
the journal's write lock (issue 19) would stop the loop (every upload, every client) for
as long as it holds it, up to SQLite's busy timeout."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import pytest

from synapse_tui.engine import collections
from synapse_tui.engine.events import Event, JobState
from synapse_tui.engine.journal import Journal
from synapse_tui.engine.protocol import ProtocolClient
from tests.engine.test_collections import make_manager, server, units_on
from tests.engine.test_lost_unit_not_anothers import lose_folder, recorded, two_folders_uploaded
from tests.harness.lock_holder import LockHolder

__all__ = ["server"]  # the fixture, imported for these tests


async def test_finding_lost_units_does_not_wait_for_the_writer_on_the_loop(
    server: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _ = server
    state, first = await two_folders_uploaded(url, tmp_path)
    # Both groups' requests were sent when the process died: both units are to be found.
    lose_folder(state, b"a")
    lose_folder(state, b"b")

    real = collections.existing_units
    holding: list[bool] = []

    async def pages_under_a_lock(
        client: ProtocolClient, collection: int
    ) -> AsyncGenerator[list[dict[str, Any]], None]:
        async for page in real(client, collection):
            # Another process takes the write lock as the page comes: the first group's
            # unit, recorded now, is committed only once it lets go (by itself: a loop
            # stopped could not tell it to).
            with LockHolder(state / Journal.FILENAME, seconds=5):
                holding.append(True)
                try:
                    yield page
                finally:
                    holding.clear()

    monkeypatch.setattr(collections, "existing_units", pages_under_a_lock)
    events: list[Event] = []
    waits: list[bool] = []
    async with make_manager(url, state, events) as m:
        writer = m.journal._writer
        wait = writer.wait

        def watched(*args: Any, **kwargs: Any) -> Any:
            if holding and not writer.caught_up():
                waits.append(True)  # the loop blocked until the other process lets go
            return wait(*args, **kwargs)

        monkeypatch.setattr(writer, "wait", watched)
        assert m.resume_unfinished() == 4
        await m.wait_idle()
        assert m.counters.count[JobState.DONE] == 4
    assert waits == [], "the units step waited for the journal's writer on the loop"
    assert len(units_on(url)) == 2  # both found, none made again
    assert recorded(state) == first
