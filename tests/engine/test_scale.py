"""A queue streamed through the journal: bounded memory, windows, counters, recovery by index."""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path

import pytest

from synapse_tui.engine import scheduler
from synapse_tui.engine.events import Event, JobState, TotalProgress
from synapse_tui.engine.journal import Journal
from synapse_tui.engine.states import TRANSITIONS, IllegalTransition
from synapse_tui.engine.uploader import Job
from tests.engine.fakeserver import FakeServer
from tests.engine.test_uploader import done, manager

LOOKAHEAD = 8  # small, so that tens of files already overflow it


@pytest.fixture(autouse=True)
def small_lookahead(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scheduler, "LOOKAHEAD", LOOKAHEAD)


def tiny_files(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"f{i:06d}.bin"
        path.write_bytes(f"{i:016d}".encode() * 4)  # distinct: no duplicate is skipped
        paths.append(path)
    return paths


def jobs_alive() -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if isinstance(o, Job))


async def test_ten_thousand_queued_jobs_hold_only_the_lookahead(tmp_path: Path) -> None:
    tiny_files(tmp_path / "src", 10_000)
    events: list[Event] = []
    before = jobs_alive()  # what earlier tests of this process left (not ours to count)
    async with manager(FakeServer(), tmp_path / "state", events) as m:
        m.drain()  # queued, none started
        totals = await m.add_paths([str(tmp_path / "src")])
        assert totals.files == 10_000
        assert len(m.jobs) <= LOOKAHEAD
        assert jobs_alive() - before <= LOOKAHEAD  # no Job object per queued file anywhere
        t = m.totals()
        assert t.files_total == 10_000 and t.counts["queued"] == 10_000
        assert t.bytes_total == 10_000 * 64


async def test_memory_stays_bounded_while_the_queue_drains(tmp_path: Path) -> None:
    tiny_files(tmp_path / "src", 600)
    events: list[Event] = []
    peak = 0

    def watch(event: Event) -> None:
        nonlocal peak
        if isinstance(event, TotalProgress):
            peak = max(peak, len(m.jobs))

    async with manager(FakeServer(), tmp_path / "state", events, concurrency=4) as m:
        m.subscribe(watch)
        m.drain()
        await m.add_paths([str(tmp_path / "src")])
        m.undrain()
        await m.wait_idle()
        assert len(done(events)) == 600  # every page of the queue was read and run
        assert peak <= LOOKAHEAD + 4  # look-ahead + active
        assert m.jobs == {}  # finished jobs are journal rows only
        assert m.totals().counts["done"] == 600 and m.totals().files_done == 600


async def test_window_reads_any_page_with_live_state(tmp_path: Path) -> None:
    tiny_files(tmp_path / "src", 40)
    events: list[Event] = []
    async with manager(FakeServer(), tmp_path / "state", events) as m:
        m.drain()
        await m.add_paths([str(tmp_path / "src")])
        ids = [j.id for j in m.window(0, 100)]
        assert len(ids) == 40 and ids == sorted(ids)
        page = m.window(30, 5)
        assert [j.id for j in page] == ids[30:35]  # rows no longer (or never) in memory
        m.cancel(ids[31])
        m.pause(ids[33])
        assert [j.state for j in m.window(30, 5)] == [
            JobState.QUEUED,
            JobState.CANCELLED,
            JobState.QUEUED,
            JobState.PAUSED,
            JobState.QUEUED,
        ]
        assert [j.id for j in m.window(0, 10, JobState.CANCELLED)] == [ids[31]]
        assert [j.id for j in m.window(0, 10, JobState.PAUSED)] == [ids[33]]
        assert len(m.window(0, 100, JobState.QUEUED)) == 38
        got = m.get(ids[39])
        assert got is not None and got.id == ids[39] and got.size == 64
        assert m.get(10_000_000) is None


async def test_bulk_controls_reach_the_rows_not_in_memory(tmp_path: Path) -> None:
    tiny_files(tmp_path / "src", 50)
    events: list[Event] = []
    async with manager(FakeServer(), tmp_path / "state", events) as m:
        m.drain()
        await m.add_paths([str(tmp_path / "src")])
        m.pause_all()
        assert m.totals().counts["paused"] == 50 and m.totals().counts["queued"] == 0
        assert len(m.window(0, 100, JobState.PAUSED)) == 50  # the journal says so too
        m.resume_all()  # also undrains
        await m.wait_idle()
        assert len(done(events)) == 50
        counts = m.totals().counts
        assert counts["done"] == 50 and counts["paused"] == counts["queued"] == 0


async def test_counters_agree_with_the_journal_after_a_mixed_run(tmp_path: Path) -> None:
    server = FakeServer()
    fail_at = {3, 17}
    paths = tiny_files(tmp_path / "src", 30)
    events: list[Event] = []
    async with manager(server, tmp_path / "state", events, retries=0) as m:
        m.drain()
        await m.add_paths([str(p) for p in paths])
        ids = [j.id for j in m.window(0, 100)]
        for i in fail_at:
            paths[i].unlink()  # gone before it is read: fails
        m.cancel(ids[5])
        m.undrain()
        await m.wait_idle()
        await m.journal.settled()  # the last done note may still be on its way
        rows = Journal(tmp_path / "state").jobs()
        by_state = {s.value: sum(1 for r in rows if r.state == s) for s in JobState}
        assert m.totals().counts == by_state
        assert by_state["failed"] == 2 and by_state["cancelled"] == 1 and by_state["done"] == 27
        assert m.retry_failed() == 2  # failed rows left memory: found again by index
        assert m.totals().counts["queued"] + m.totals().counts["failed"] == 2


def test_the_transition_table_refuses_what_it_does_not_list() -> None:
    job = Job(id=1, path=b"/a", size=1, identity=None, fingerprint="f", chunk_size=1)  # type: ignore[arg-type]
    job.state = JobState.DONE
    m = object.__new__(scheduler.UploadManager)
    m.jobs, m.counters = {}, scheduler.Counters()
    with pytest.raises(IllegalTransition):
        m.transition(job, JobState.QUEUED)  # done is final
    assert TRANSITIONS[JobState.DONE] == frozenset()
    assert JobState.QUEUED in TRANSITIONS[JobState.FAILED]  # retry


async def test_a_higher_priority_overtakes_a_full_lookahead(tmp_path: Path) -> None:
    tiny_files(tmp_path / "low", 30)
    urgent = tiny_files(tmp_path / "high", 1)[0]
    urgent.write_bytes(b"urgent" * 10)
    events: list[Event] = []
    async with manager(FakeServer(), tmp_path / "state", events, concurrency=1) as m:
        m.drain()
        await m.add_paths([str(tmp_path / "low")])
        await m.add_paths([str(urgent)], priority=5)
        m.undrain()
        await m.wait_idle()
    first = done(events)[0]
    assert first.path.endswith("high/f000000.bin")


async def test_recovery_reads_the_journal_by_index_never_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tiny_files(tmp_path / "src", 200)
    state = tmp_path / "state"
    events: list[Event] = []
    async with manager(FakeServer(), state, events) as m:
        m.drain()
        await m.add_paths([str(tmp_path / "src")])
    server = FakeServer()
    events = []
    m = manager(server, state, events)

    def whole_table(*args: object) -> object:
        raise AssertionError("recovery read every row of the journal")

    monkeypatch.setattr(m.journal, "jobs", whole_table)
    async with m:
        assert m.resume_unfinished() == 200
        assert len(m.jobs) <= LOOKAHEAD  # the rest are rows, read a page at a time
        await m.wait_idle()
    assert len(done(events)) == 200


async def test_jobs_driven_elsewhere_do_not_stall_the_lookahead(tmp_path: Path) -> None:
    """Jobs whose lock another process holds stay held (queued) here: more of them than half
    the look-ahead must not stop the next page from being read."""
    tiny_files(tmp_path / "src", 30)
    state = tmp_path / "state"
    events: list[Event] = []
    async with manager(FakeServer(), state, events) as m:
        m.drain()
        await m.add_paths([str(tmp_path / "src")])
        ids = [j.id for j in m.window(0, 100)]
        other = Journal(state)  # another holder of the locks, as another process would be
        try:
            for job_id in ids[:6]:  # the first 6 of the queue: more than LOOKAHEAD // 2
                assert other.try_lock(job_id)
            m.undrain()
            await asyncio.wait_for(m.wait_idle(), 30)
            assert len(done(events)) == 24
        finally:
            other.close()
