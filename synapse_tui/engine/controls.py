"""What a user does to a manager's jobs: pause, resume, cancel, retry, reprioritise."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING

from synapse_tui.engine.errors import FatalError
from synapse_tui.engine.events import JobState
from synapse_tui.engine.job import Job, job_from_record
from synapse_tui.engine.journal import JobRecord

if TYPE_CHECKING:
    from synapse_tui.engine.scheduler import UploadManager

log = logging.getLogger("synapse_tui.engine")

PAGE = 500  # rows a bulk verb reads (and changes) per turn of the loop


class Controls:
    """The control verbs on one job or on every job of the manager `m`, each journaled.

    A bulk verb never waits for the journal on the engine's loop: it changes the jobs in
    memory at once (a running upload pauses now), and the rows a page at a time, at once
    while the journal has every write of this process before it committed and room in its
    queue, else each page after `Journal.settled` (the loop goes on, e.g. while another
    process holds the journal's lock). A verb asked while one waits runs after it, in
    order. A verb on one job runs at once: a job that is only a row has it read, as this
    process wrote it (front ends await `Journal.settled` first)."""

    def __init__(self, m: UploadManager) -> None:
        self.m = m
        self._chain: list[asyncio.Task[None]] = []  # verbs waiting for the journal, in order
        # Pauses whose rows wait for the journal: dispatch starts no job meanwhile (it would
        # read those rows as still queued).
        self._pausing: set[asyncio.Task[None]] = set()

    # -- one job ----------------------------------------------------------------------------

    def pause(self, job_id: int) -> None:
        self._one(job_id, self._pause)

    def resume(self, job_id: int) -> None:
        self._one(job_id, self._resume)

    def cancel(self, job_id: int) -> None:
        self._one(job_id, self._cancel)

    def set_priority(self, job_id: int, priority: int) -> None:
        self._one(job_id, lambda i, wait: self._set_priority(i, priority, wait))

    def _pause(self, job_id: int, wait: bool = True) -> None:
        m = self.m
        job = m.views.get(job_id, wait=wait)
        if job is None or job.state.terminal or job.state == JobState.PAUSED:
            return
        job.pause_requested = True
        job.wake.set()
        if job.task is None or job.task.done():
            m.set_state(job, JobState.PAUSED, "paused")
        else:
            asyncio.get_running_loop().call_later(
                m.options.pause_grace, self._cut_for_pause, job, job.task
            )
        m.kick()

    def _cut_for_pause(self, job: Job, task: asyncio.Task[None]) -> None:
        if job.pause_requested and job.task is task and not task.done():
            job.pause_cut = True
            task.cancel()

    def _resume(self, job_id: int, wait: bool = True) -> None:
        m = self.m
        job = m.views.get(job_id, wait=wait)
        if job is None:
            return
        job.pause_requested = False
        if job.state == JobState.PAUSED and (job.task is None or job.task.done()):
            job.reset_retries()
            m.set_state(job, JobState.QUEUED)
        m.kick()

    def _cancel(self, job_id: int, wait: bool = True) -> None:
        m = self.m
        job = m.views.get(job_id, wait=wait)
        if job is None or job.state.terminal:
            return
        job.cancel_requested = True
        if job.task is not None and not job.task.done():
            job.task.cancel()
        else:
            m.set_state(job, JobState.CANCELLED, "cancelled")
        m.kick()

    def _set_priority(self, job_id: int, priority: int, wait: bool = True) -> None:
        m = self.m
        job = m.views.get(job_id, wait=wait)
        if job is not None:
            job.priority = priority
            m.journal.update(job_id, priority=priority)
            if job.state == JobState.QUEUED:
                m.queue.offer(job)
            m.kick()

    # -- every job --------------------------------------------------------------------------

    def pause_all(self) -> None:
        self._bulk(self._pause_held, JobState.QUEUED, self._pause_row, pausing=True)
        # Those waiting for their data unit are rows too (engine/lookahead.py): else the
        # units step, run once nothing uploads, registers them after all.
        self._bulk(lambda: None, JobState.REGISTERING, self._pause_row, pausing=True)

    def _pause_held(self) -> None:
        for job_id in list(self.m.jobs):
            self._pause(job_id)

    def _pause_row(self, rec: JobRecord) -> None:
        m = self.m
        if rec.id in m.jobs:
            self._pause(rec.id)
        elif rec.id not in m.queue.elsewhere:
            m.set_state(job_from_record(rec), JobState.PAUSED, "paused")

    def stop_rows(self, message: str, states: tuple[JobState, ...] = (JobState.QUEUED,)) -> None:
        """Pause the rows in `states` not in memory, with `message` (a fatal stop or a
        close: the jobs in memory are its own to stop)."""

        def row(rec: JobRecord) -> None:
            if rec.id not in self.m.jobs:
                self.m.set_state(job_from_record(rec), JobState.PAUSED, message)

        for state in states:
            self._bulk(lambda: None, state, row)

    def pause_each(self, job_ids: Iterable[int]) -> None:
        """Pause each of `job_ids` (a batch's: read a page at a time as they are paused)."""

        async def later() -> None:
            ids = iter(job_ids)
            while True:
                await self.m.journal.room()
                await self.m.journal.settled()
                page = list(itertools.islice(ids, PAGE))
                for job_id in page:  # its own row each: the writes queued meanwhile are not
                    self._pause(job_id, wait=False)  # ... of the rows read next
                if len(page) < PAGE:
                    return

        self._later(later, pausing=True)

    def resume_all(self) -> None:
        self._bulk(self._resume_held, JobState.PAUSED, self._resume_row)
        self.m.kick()

    def _resume_held(self) -> None:
        self.m.draining = False
        for job_id in list(self.m.jobs):
            self._resume(job_id)

    def _resume_row(self, rec: JobRecord) -> None:
        m = self.m
        if rec.id not in m.jobs:
            job = job_from_record(rec)
            job.reset_retries()
            m.set_state(job, JobState.QUEUED)
            m.journal.update(job.id, attempts=0)

    def retry_failed(self) -> int:
        """Queue the failed jobs again, and cut short the backoff of the ones retrying; how
        many were queued again now (rows that wait for the journal follow shortly)."""
        count = [0]

        def held() -> None:
            for job in self.m.runner.running:
                job.wake.set()  # a job in `_sleep` retries now; one not sleeping ignores it
            for job in [j for j in self.m.jobs.values() if j.state == JobState.FAILED]:
                self._retry(job)
                count[0] += 1

        def row(rec: JobRecord) -> None:
            if rec.id not in self.m.jobs:
                self._retry(job_from_record(rec))
                count[0] += 1

        self._bulk(held, JobState.FAILED, row)
        self.m.kick()
        return count[0]

    def _retry(self, job: Job) -> None:
        job.reset_retries()
        job.restarts = 0
        job.cancel_requested = job.pause_requested = False
        self.m.set_state(job, JobState.QUEUED)
        self.m.journal.update(job.id, attempts=0)  # read back with its page

    # -- order, and the journal's pace ------------------------------------------------------

    def _one(self, job_id: int, verb: Callable[[int, bool], None]) -> None:
        """`verb` now (a job not in memory: its row is read, as this process wrote it; a
        caller on the loop awaits `Journal.settled` first), or after the verbs waiting."""
        if not self._chain:
            verb(job_id, True)
            return

        async def later() -> None:
            await self.m.journal.settled()
            verb(job_id, False)

        self._later(later)

    def _bulk(
        self,
        held: Callable[[], None],
        state: JobState,
        row: Callable[[JobRecord], None],
        *,
        pausing: bool = False,
    ) -> None:
        """`held` on the jobs in memory, then `row` on every row in `state` not in memory."""
        if not self._chain:
            caught_up = self.m.journal.caught_up()
            held()  # no reads: the jobs in memory change at once
            after = self._pages(state, row, 0) if caught_up else 0
            if after is not None:
                self._later(lambda: self._pages_later(state, row, after), pausing=pausing)
            return

        async def later() -> None:
            await self.m.journal.settled()
            held()
            await self._pages_later(state, row, 0)

        self._later(later, pausing=pausing)

    def _pages(self, state: JobState, row: Callable[[JobRecord], None], after: int) -> int | None:
        """The rows now, while the journal's queue has room; None when every page is done,
        else where to go on. Read as committed: the writes queued since this verb began
        are its own, to rows of pages read before."""
        m = self.m
        while m.journal.has_room():
            recs = m.session.in_state(state, after, PAGE, wait=False)
            for rec in recs:
                row(rec)
            if len(recs) < PAGE:
                return None
            after = recs[-1].id
        return after

    async def _pages_later(
        self, state: JobState, row: Callable[[JobRecord], None], after: int
    ) -> None:
        m = self.m
        while True:
            await m.journal.room()
            await m.journal.settled()  # the page's read waits for nothing
            recs = m.session.in_state(state, after, PAGE)
            for rec in recs:
                row(rec)
            m.kick()
            if len(recs) < PAGE:
                return
            after = recs[-1].id

    def _later(self, verb: Callable[[], Awaitable[None]], *, pausing: bool = False) -> None:
        before = self._chain[-1] if self._chain else None

        async def run() -> None:
            if before is not None:
                await asyncio.wait([before])  # its outcome is its own
            await verb()

        task = asyncio.get_running_loop().create_task(run(), name="control")
        self._chain.append(task)
        if pausing:
            self._pausing.add(task)
        task.add_done_callback(self._ended)

    @property
    def pausing(self) -> bool:
        """Whether a pause's rows wait for the journal (see `_pausing`)."""
        return bool(self._pausing)

    def waiting(self) -> bool:
        """Whether a verb waits for the journal: the manager is not idle until it is done
        (a resume's rows may still make work)."""
        return bool(self._chain)

    def _ended(self, task: asyncio.Task[None]) -> None:
        self._chain.remove(task)
        self._pausing.discard(task)
        self.m.kick()  # dispatch looks again and idleness is asked again
        if task.cancelled():
            return
        exc = task.exception()
        if isinstance(exc, FatalError):  # a journal write failed: stop, one line
            self.m.runner.fatal(exc)
        elif exc is not None:
            log.error("control failed", exc_info=exc)
            self.m.log("error", f"control failed: {type(exc).__name__}: {exc}")

    async def done(self) -> None:
        """Until every verb asked so far is done (the loop goes on)."""
        if self._chain:
            await asyncio.wait([self._chain[-1]])

    async def finish(self) -> None:
        """`done`, for a closing manager: at most the journal's CLOSE_PATIENCE, then the
        verbs still waiting are dropped (their rows stay as they were: resumable)."""
        if not self._chain:
            return
        await asyncio.wait([self._chain[-1]], timeout=self.m.journal.CLOSE_PATIENCE)
        for task in list(self._chain):
            task.cancel()
