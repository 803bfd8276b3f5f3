"""`resume_unfinished(keep_paused)`: the named jobs come back paused, as rows, the rest queued."""

from __future__ import annotations

from pathlib import Path

import pytest

from synapse_tui.engine import scheduler
from synapse_tui.engine.events import Event, JobQueued, JobState, JobStateChanged
from synapse_tui.engine.journal import JobRecord
from tests.engine.fakeserver import FakeServer
from tests.engine.test_scale import tiny_files
from tests.engine.test_uploader import done, manager

LOOKAHEAD = 8


@pytest.fixture(autouse=True)
def small_lookahead(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scheduler, "LOOKAHEAD", LOOKAHEAD)


async def test_named_jobs_come_back_paused_beyond_the_lookahead(tmp_path: Path) -> None:
    tiny_files(tmp_path / "src", 60)
    state = tmp_path / "state"
    async with manager(FakeServer(), state, []) as m:
        m.drain()
        await m.add_paths([str(tmp_path / "src")])
        ids = sorted(j.id for j in m.window(0, 100))
        m.pause_all()
        for job_id in ids[50:]:  # ten of them go back to queued: not the user's pause
            m.resume(job_id)
    user_paused = set(ids[:40])
    queued_named = ids[55]  # a queued row the user's pause names (it had not landed)

    def keep(rec: JobRecord) -> bool:
        return rec.id in user_paused or rec.id == queued_named

    events: list[Event] = []
    server = FakeServer()
    async with manager(server, state, events) as m:
        m.drain()
        assert m.resume_unfinished(keep) == 60
        counts = m.totals().counts
        # 40 paused rows named + 1 queued row named; 10 paused rows not named + 9 queued.
        assert counts["paused"] == 41 and counts["queued"] == 19
        assert len(m.jobs) <= LOOKAHEAD  # paused rows are not held in memory
        paused_ids = {j.id for j in m.window(0, 100, JobState.PAUSED)}
        assert paused_ids == user_paused | {queued_named}
        # Each kept job was announced, then said to be paused (clients learn its state).
        announced = [e.job_id for e in events if isinstance(e, JobQueued)]
        said_paused = {
            e.job_id
            for e in events
            if isinstance(e, JobStateChanged) and e.state == JobState.PAUSED
        }
        assert len(announced) == 60 and (user_paused | {queued_named}) <= said_paused
        m.undrain()
        await m.wait_idle()
        assert len(done(events)) == 19  # the others ran; the kept ones did not
        m.resume_all()
        await m.wait_idle()
        assert len(done(events)) == 60
