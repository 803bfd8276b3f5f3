"""Queue views (engine.queue_view): windows by position, by job id, by the first active job."""

from __future__ import annotations

from pathlib import Path

import pytest

from synapse_tui.engine import queue_view, scheduler
from synapse_tui.engine.events import Event, JobState
from synapse_tui.engine.queue_view import ACTIVE_FILTER, Ask
from tests.engine.fakeserver import FakeServer
from tests.engine.test_scale import tiny_files
from tests.engine.test_uploader import manager


@pytest.fixture(autouse=True)
def small_lookahead(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scheduler, "LOOKAHEAD", 8)


def ids_of(answer: queue_view.Answer) -> list[int]:
    return [j.id for j in answer.jobs]


async def test_windows_by_position_and_by_job_agree(tmp_path: Path) -> None:
    tiny_files(tmp_path / "src", 60)
    events: list[Event] = []
    async with manager(FakeServer(), tmp_path / "state", events) as m:
        m.drain()
        await m.add_paths([str(tmp_path / "src")])
        every = ids_of(queue_view.window(m, Ask(0, 100)))
        assert len(every) == 60 and every == sorted(every)
        by_offset = queue_view.window(m, Ask(offset=20, limit=10))
        assert by_offset.offset == 20 and ids_of(by_offset) == every[20:30]
        # by job id: 3 rows before it, the rest from it; its position counted from scratch
        by_id = queue_view.window(m, Ask(limit=10, at=every[25], before=3))
        assert by_id.offset == 22 and ids_of(by_id) == every[22:32]
        assert by_id.anchor == every[25] and by_id.total == 60
        # ... or from a position known from an earlier answer (rows between them counted)
        known = queue_view.window(m, Ask(limit=5, at=every[40], known=(every[30], 30)))
        assert known.offset == 40 and ids_of(known) == every[40:45]
        back = queue_view.window(m, Ask(limit=5, at=every[10], known=(every[30], 30)))
        assert back.offset == 10 and ids_of(back) == every[10:15]
        # past the end: the last rows
        end = queue_view.window(m, Ask(limit=5, at=every[-1] + 1000))
        assert ids_of(end) == every[-5:] and end.offset == 55


async def test_a_state_filter_and_the_first_active_job(tmp_path: Path) -> None:
    tiny_files(tmp_path / "src", 40)
    events: list[Event] = []
    async with manager(FakeServer(), tmp_path / "state", events) as m:
        m.drain()
        await m.add_paths([str(tmp_path / "src")])
        every = ids_of(queue_view.window(m, Ask(0, 100)))
        for job_id in every[:10]:
            m.cancel(job_id)
        m.pause(every[12])
        cancelled = queue_view.window(m, Ask(0, 100, state="cancelled"))
        assert ids_of(cancelled) == every[:10] and cancelled.total == 10
        paused = queue_view.window(m, Ask(0, 100, state="paused"))
        assert ids_of(paused) == [every[12]] and paused.total == 1
        queued = queue_view.window(m, Ask(limit=3, state="queued", at=every[20], before=1))
        assert ids_of(queued) == [every[19], every[20], every[21]]
        assert queued.offset == 19 - 11  # ten cancelled and one paused are not queued
        # nothing active: following finds nothing, the window stays where it was asked
        still = queue_view.window(m, Ask(limit=3, at=every[30], follow=True))
        assert ids_of(still) == every[30:33] and still.anchor == every[30]
        # a job becomes active (in memory, its row written late): following finds it
        at = 15
        job = m.get(every[at])
        assert job is not None and job.state == JobState.QUEUED
        m.jobs[job.id] = job  # as the dispatcher holds a job it starts
        m.transition(job, JobState.HASHING)
        follow = queue_view.window(m, Ask(limit=5, follow=True, before=2))
        assert follow.anchor == job.id and ids_of(follow) == every[at - 2 : at + 3]
        assert follow.offset == at - 2
        active = queue_view.window(m, Ask(0, 10, state=ACTIVE_FILTER))
        assert ids_of(active) == [job.id] and active.total == 1
        m.transition(job, JobState.QUEUED)
        del m.jobs[job.id]


def test_the_browser_marks_ask_the_ledger_for_listed_files_only(tmp_path: Path) -> None:
    """The ✓ of the file browser: which of the listed files were uploaded, by index, never
    the whole ledger (a million uploads are no set in the dashboard)."""
    from synapse_tui.engine.journal import Journal

    journal = Journal(tmp_path / "state")
    db = journal.connection
    rows = [("h", f"fp{i}", 1, "m", f"u{i}", f"/d/f{i}".encode(), 0.0) for i in range(5000)]
    db.executemany("INSERT INTO ledger VALUES (?,?,?,?,?,?,?)", rows)
    asked = [b"/d/f3", b"/d/f4999", b"/d/nope"]
    assert journal.uploaded_among("h", asked) == {b"/d/f3", b"/d/f4999"}
    assert journal.uploaded_among("other", asked) == set()
    plan = db.execute(
        "EXPLAIN QUERY PLAN SELECT path FROM ledger WHERE host = ? AND path IN (?, ?)",
        ("h", b"a", b"b"),
    ).fetchall()
    assert any("ledger_path" in str(tuple(r)) for r in plan)  # an index search, not a scan
    journal.close()
