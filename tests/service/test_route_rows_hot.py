"""The router reads a job's batch row from SQLite about once per file, not at every event."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from synapse_tui.engine.events import Event, JobState
from synapse_tui.service.batch_jobs import BatchJobs, Member
from synapse_tui.service.routing import CURRENT_BATCH, Batch, Router
from tests.engine.fakeserver import FakeServer
from tests.engine.test_scale import tiny_files
from tests.engine.test_uploader import done, manager
from tests.service.test_routing_bounded import until_settled

FILES = 300


async def test_a_small_files_events_read_its_row_at_most_twice(tmp_path: Path) -> None:
    tiny_files(tmp_path / "src", FILES)
    events: list[Event] = []
    router = Router()
    reads: list[str] = []

    def trace(statement: str) -> None:
        if "route_jobs" in statement and statement.lstrip().upper().startswith("SELECT"):
            reads.append(statement)

    async with manager(FakeServer(), tmp_path / "state", events, concurrency=4) as m:
        router.manager = m
        m.subscribe(router)
        m.journal.connection.set_trace_callback(trace)
        batch: Batch = router.new_batch(None)
        token = CURRENT_BATCH.set(batch)
        try:
            await m.add_paths([str(tmp_path / "src")])
        finally:
            CURRENT_BATCH.reset(token)
        await m.wait_idle()
        await until_settled(batch)
        m.journal.connection.set_trace_callback(None)
    assert len(done(events)) == FILES
    # The counters the rows feed are right: every file counted once, as done.
    assert batch.counters.count[JobState.DONE] == FILES
    assert batch.counters.bytes_done() == FILES * 64
    # Its admission (is it another batch's?) and its first state change (its row may have
    # left memory while it waited in the queue) at most; every event read it before (5).
    assert len(reads) <= 2 * FILES, len(reads) / FILES


def _rows(db: sqlite3.Connection) -> dict[int, Member]:
    return {
        int(job): Member(int(b), JobState(state), int(size), int(sent))
        for job, b, state, size, sent in db.execute("SELECT * FROM temp.route_jobs")
    }


def test_the_rows_in_memory_are_bounded_and_agree_with_the_table() -> None:
    db = sqlite3.connect(":memory:", isolation_level=None)
    jobs = BatchJobs(db)
    jobs.HOT = 50
    for job_id in range(1, 201):
        jobs.put(job_id, Member(1 + job_id % 2, JobState.QUEUED, 10, 0))
    assert len(jobs._hot) == 50  # the newest only
    jobs.move(3, JobState.UPLOADING, 4)  # a row out of memory: the table has it
    jobs.move(200, JobState.DONE, 10)  # a row in memory: both change
    table = _rows(db)
    assert table[3] == Member(2, JobState.UPLOADING, 10, 4)
    for job_id in range(1, 201):
        assert jobs.get(job_id) == table[job_id]
    assert len(jobs._hot) == 50
    jobs.drop(1)  # batch 1: the even ids
    assert all(m.batch == 2 for m in _rows(db).values())
    assert all(jobs.get(job_id) is None for job_id in range(2, 201, 2))
    assert jobs.get(199) == Member(2, JobState.QUEUED, 10, 0)
    assert jobs.get(7777) is None and 7777 not in jobs._hot
