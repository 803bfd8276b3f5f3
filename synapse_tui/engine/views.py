"""What a manager shows: its jobs by id or page, totals, and the periodic progress events."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import TYPE_CHECKING

from synapse_tui.engine.events import JobProgress, JobState, TotalProgress
from synapse_tui.engine.job import Job, job_from_record

if TYPE_CHECKING:
    from synapse_tui.engine.scheduler import UploadManager


def _by_id(job: Job) -> int:
    return job.id


class Views:
    """Reads over every job of the manager `m` (in memory or only journal rows), each at
    the cost of what it returns, and the ticker that sends progress of changed jobs."""

    def __init__(self, m: UploadManager) -> None:
        self.m = m
        self.dirty: set[int] = set()  # jobs whose progress changed since the last tick

    def get(self, job_id: int, *, wait: bool = True) -> Job | None:
        """A job of this manager: the one in memory, else a copy read from its journal row
        (changing the copy changes nothing: use the control methods); `wait=False`: the
        row as committed."""
        job = self.m.jobs.get(job_id)
        if job is not None:
            return job
        rec = self.m.session.get(job_id, wait=wait)
        return job_from_record(rec) if rec is not None else None

    def window(self, offset: int, limit: int, state: JobState | None = None) -> list[Job]:
        """Jobs of this manager by id from `offset` (those in `state`), read by index
        from the journal: a queue view's page costs its length, whatever the queue's.
        Jobs in memory are given as they are now (their row may lag a few ms)."""
        jobs = self.m.jobs
        if state is not None and state.active and state != JobState.REGISTERING:
            # Active states live in memory (journaled late): no row to read. Registering is
            # journaled at once, and its jobs waiting for their unit are rows only.
            live = sorted((j for j in jobs.values() if j.state == state), key=_by_id)
            return live[offset : offset + limit]
        out: list[Job] = []
        for rec in self.m.session.window(offset, max(0, limit), state):
            job = jobs.get(rec.id) or job_from_record(rec)
            if state is None or job.state == state:
                out.append(job)
        return out

    def each(self, state: JobState) -> Iterator[Job]:
        """Every job of this manager in `state`: those in memory, then the rows, a page at
        a time (a bulk pause or retry of a million jobs holds one page)."""
        jobs = self.m.jobs
        yield from [j for j in jobs.values() if j.state == state]
        for rec in self.m.session.each(state):
            if rec.id not in jobs:
                yield job_from_record(rec)

    def totals(self) -> TotalProgress:
        """Totals over every job of this manager, from the counters kept on each state
        change plus the bytes the jobs in memory sent since: O(jobs in memory), never
        O(queue). Cancelled jobs count for neither the total nor the done bytes."""
        m = self.m
        c = m.counters
        done = c.bytes_done()
        for job in m.jobs.values():
            if job.state not in (JobState.DONE, JobState.CANCELLED):
                done += job.sent - job.counted_sent
        total = c.bytes_total()
        rate = m.meter.sample()
        remaining = max(0, total - done)
        low, high = m.meter.eta_range(remaining)
        return TotalProgress(
            bytes_done=done,
            bytes_total=total,
            files_done=c.count[JobState.DONE],
            files_total=c.files,
            rate=rate,
            eta=m.meter.eta(remaining),
            eta_low=low,
            eta_high=high,
            counts={state.value: n for state, n in c.count.items()},
            stalled=remaining > 0 and m.meter.stalled() and bool(m.runner.running),
        )

    def emit_totals(self) -> None:
        self.m.emit(self.totals())

    async def tick_loop(self) -> None:
        m = self.m
        warned_expiry: set[int] = set()
        while True:
            await asyncio.sleep(m.options.tick)
            dirty, self.dirty = self.dirty, set()
            for job_id in dirty:
                job = m.jobs.get(job_id)
                if job is None:
                    continue
                rate = job.meter.rate()
                eta = job.meter.eta(job.size - job.sent) if job.state.active else None
                m.emit(JobProgress(job.id, job.sent, job.size, rate, eta))
                expiry = m.options.expiry
                if eta and expiry and eta > expiry and job.id not in warned_expiry:
                    warned_expiry.add(job.id)
                    m.log(
                        "warning",
                        f"{job.display}: at this rate the upload outlives the server's "
                        f"{expiry / 3600:.0f}h expiry",
                        job.id,
                    )
            if dirty or m.runner.active():
                self.emit_totals()
