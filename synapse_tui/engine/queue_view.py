"""What a queue view shows: a window of a manager's jobs found by offset, by job or by the
first active job, and its position; costs the window's length, not the queue's (issue 21)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from synapse_tui.engine.events import JobState
from synapse_tui.engine.job import job_from_record
from synapse_tui.engine.journal import JobRecord

if TYPE_CHECKING:
    from synapse_tui.engine.scheduler import Job, UploadManager

ACTIVE_FILTER = "active"  # a view filter that is no single state: every active one
MAX_ROWS = 1000  # rows per window: a view asks for what it shows
_MEMBER = "EXISTS (SELECT 1 FROM temp.session_jobs s WHERE s.tag = ? AND s.id = j.id)"


@dataclass(frozen=True, slots=True)
class Ask:
    """A view's question. With `at` (or `follow` and a job active) the window is found by
    job id: `before` rows before it, the rest from it on; else from `offset`. `known` is a
    job id and its position from an earlier answer: the new position is counted from it
    (the rows between), not from the top of the queue."""

    offset: int = 0
    limit: int = 100
    state: str | None = None  # a JobState value, ACTIVE_FILTER, or None: every job
    at: int | None = None
    follow: bool = False
    before: int = 0
    known: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class Answer:
    offset: int  # the position of jobs[0] among the view's jobs (estimated after `known`)
    total: int  # the view's jobs
    jobs: list[Job]
    anchor: int | None  # the job the window was found by (None: by offset)


def window(m: UploadManager, ask: Ask) -> Answer:
    """The rows of `ask`, with their position. Positions under a state filter are counted
    from `known` and may lag rows above that changed state since (a move by offset, `g`,
    counts them again)."""
    limit = max(0, min(MAX_ROWS, ask.limit))
    # Registering is journaled at once, and its jobs waiting for their data unit are rows
    # only (engine/lookahead.py): read by index like a waiting state.
    registering = ask.state == JobState.REGISTERING.value
    if ask.state == ACTIVE_FILTER or (ask.state and JobState(ask.state).active and not registering):
        return _in_memory(m, ask, limit)
    state = JobState(ask.state) if ask.state else None
    total = m.counters.files if state is None else m.counters.count[state]
    anchor = ask.at
    if ask.follow:
        anchor = first_active(m, state) or anchor
    if anchor is None:
        offset = max(0, min(ask.offset, max(0, total - 1)))
        return Answer(offset, total, m.window(offset, limit, state), None)
    before = _rows(m, state, anchor, min(ask.before, limit), descending=True)[::-1]
    after = _rows(m, state, anchor, limit - len(before), descending=False)
    recs = before + after
    if not recs:  # the anchor and everything after it left the view: its end
        offset = max(0, total - limit)
        return Answer(offset, total, m.window(offset, limit, state), None)
    first = recs[0].id
    if ask.known is not None:
        known_id, known_index = ask.known
        if first >= known_id:
            offset = known_index + _count(m, state, known_id, first)
        else:
            offset = known_index - _count(m, state, first, known_id)
    else:
        offset = _count(m, state, 0, first)
    offset = max(0, min(offset, max(0, total - len(recs))))
    # The jobs in memory as they are now (a row may lag its job by a few ms).
    jobs = [m.jobs.get(r.id) or job_from_record(r) for r in recs]
    jobs = [j for j in jobs if state is None or j.state == state]
    return Answer(offset, total, jobs, anchor)


def first_active(m: UploadManager, state: JobState | None = None) -> int | None:
    """The lowest id among the active jobs (O(jobs in memory)); with `state`, among those
    in that state too (none for a finished or waiting state)."""
    ids = [j.id for j in m.jobs.values() if j.state.active and (state is None or j.state == state)]
    return min(ids) if ids else None


def _in_memory(m: UploadManager, ask: Ask, limit: int) -> Answer:
    """Active jobs are in memory (their rows are written late): the view is made there."""
    if ask.state == ACTIVE_FILTER:
        live = sorted((j for j in m.jobs.values() if j.state.active), key=lambda j: j.id)
    else:
        wanted = JobState(str(ask.state))
        live = sorted((j for j in m.jobs.values() if j.state == wanted), key=lambda j: j.id)
    offset = ask.offset
    anchor = live[0].id if ask.follow and live else ask.at
    if anchor is not None:
        ids = [j.id for j in live]
        at = next((i for i, job_id in enumerate(ids) if job_id >= anchor), len(ids))
        offset = max(0, at - ask.before)
    offset = max(0, min(offset, max(0, len(live) - 1)))
    return Answer(offset, len(live), live[offset : offset + limit], anchor)


def _rows(
    m: UploadManager, state: JobState | None, anchor: int, limit: int, *, descending: bool
) -> list[JobRecord]:
    """Up to `limit` members (in `state`) from `anchor` on, or before it: by index."""
    if limit <= 0:
        return []
    db, tag = m.session.db, m.session.tag
    order, cmp = ("DESC", "<") if descending else ("", ">=")
    if state is None:
        rows = db.execute(
            "SELECT j.* FROM temp.session_jobs s JOIN jobs j ON j.id = s.id"
            f" WHERE s.tag = ? AND s.id {cmp} ? ORDER BY s.id {order} LIMIT ?",
            (tag, anchor, limit),
        )
    else:
        rows = db.execute(
            f"SELECT * FROM jobs j INDEXED BY jobs_state WHERE j.state = ? AND j.id {cmp} ?"
            f" AND {_MEMBER} ORDER BY j.id {order} LIMIT ?",
            (state.value, anchor, tag, limit),
        )
    return [JobRecord.from_row(r) for r in rows]


def _count(m: UploadManager, state: JobState | None, low: int, high: int) -> int:
    """Members (in `state`) with `low` <= id < `high`: the index range between them."""
    db, tag = m.session.db, m.session.tag
    if state is None:
        (n,) = db.execute(
            "SELECT COUNT(*) FROM temp.session_jobs WHERE tag = ? AND id >= ? AND id < ?",
            (tag, low, high),
        ).fetchone()
    else:
        (n,) = db.execute(
            "SELECT COUNT(*) FROM jobs j INDEXED BY jobs_state WHERE j.state = ?"
            f" AND j.id >= ? AND j.id < ? AND {_MEMBER}",
            (state.value, low, high, tag),
        ).fetchone()
    return int(n)
