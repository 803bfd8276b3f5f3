"""The jobs a manager holds in memory: the look-ahead of queued jobs and the dispatch heap."""

from __future__ import annotations

import heapq
import itertools
import weakref

from synapse_tui.engine.events import JobState
from synapse_tui.engine.job import Job, job_from_record
from synapse_tui.engine.journal import JobRecord
from synapse_tui.engine.session import Session
from synapse_tui.engine.states import Counters

_NO_FLOOR = 1 << 62

Entry = tuple[int, int, int, Job]  # (-priority, id, push order, job)


class Lookahead:
    """The jobs held in memory: active, up to `limit` queued ones ahead of dispatch (read
    from the journal's queue index a page at a time when fewer than half are left), paused
    ones, and those another process drives. Every other job is only a journal row."""

    def __init__(self, session: Session, counters: Counters, limit: int) -> None:
        self.session = session
        self.counters = counters
        self.limit = limit
        self.jobs: dict[int, Job] = {}
        # Held jobs another process holds the lock of: never dispatched, rows not ours.
        self.elsewhere: set[int] = set()
        self.held_queued = 0  # jobs in `jobs` whose state is QUEUED
        self.journal_queued = False  # queued rows may wait in the journal, not in memory
        self.floor = _NO_FLOOR  # the lowest priority held (a higher one refreshes the page)
        # Jobs that became QUEUED, by (-priority, id); stale entries are dropped when popped,
        # so dispatch never sorts every job (many small files: O(n) per file otherwise).
        self.ready: list[Entry] = []
        self._seq = itertools.count()
        # Jobs let go while they wait for their data unit, as long as something else still
        # holds them (a front end, a test): the units step drives that same object again.
        self.gone: weakref.WeakValueDictionary[int, Job] = weakref.WeakValueDictionary()

    def moved(self, job: Job, old: JobState) -> None:
        """`job` went from `old` to its state (UploadManager.transition)."""
        if self.jobs.get(job.id) is job:
            self.held_queued += (job.state == JobState.QUEUED) - (old == JobState.QUEUED)
        if job.state == JobState.QUEUED:
            self.offer(job)

    def hold(self, job: Job) -> None:
        """Keep `job` in memory (it is about to run, or runs)."""
        if self.jobs.get(job.id) is job:
            return
        self.jobs[job.id] = job
        if job.state == JobState.QUEUED:
            self.held_queued += 1
            self.floor = min(self.floor, job.priority)
            self.push_ready(job)

    def release(self, job: Job) -> None:
        """Forget `job` in memory: from now on it is its journal row and its counters."""
        if self.jobs.get(job.id) is not job:
            return
        del self.jobs[job.id]
        if job.state == JobState.QUEUED:
            self.held_queued -= 1
            self.journal_queued = True
        self.counters.add_sent(job.state, job.sent - job.counted_sent)
        job.counted_sent = job.sent
        if job.state == JobState.REGISTERING:
            self.gone[job.id] = job

    def from_row(self, rec: JobRecord) -> Job:
        """The job of the row `rec`: the one held, else the one let go if it still exists
        and the row says what it says (changed since through a copy: a fresh one), else
        a fresh one."""
        job = self.jobs.get(rec.id)
        if job is not None:
            return job
        old = self.gone.get(rec.id)
        if old is not None and old.state == rec.state and old.steps == rec.steps:
            return old
        return job_from_record(rec)

    def maybe_release(self, job: Job) -> None:
        """A job that will not run again here leaves memory; its row says the rest. One
        registering without a task waits for its data unit: the units step reads it from
        the journal (a page at a time), and a twin finds it by content there."""
        if (
            (job.state.terminal or job.state == JobState.REGISTERING)
            and (job.task is None or job.task.done())
            and job.id not in self.elsewhere
        ):
            self.release(job)

    def offer(self, job: Job) -> None:
        """A job became queued: into the look-ahead if it has room (or the job outranks
        it), else it waits in the journal for the next page."""
        if self.jobs.get(job.id) is job:
            self.push_ready(job)
        elif self.room_for(job.priority):
            self.hold(job)

    def count(self) -> int:
        """Queued jobs held that this process may start: those another process drives stay
        held and queued here, and must not take the look-ahead's room (nor stop its refill)."""
        return max(0, self.held_queued - len(self.elsewhere))

    def room_for(self, priority: int) -> bool:
        """Whether a queued job of `priority` joins the look-ahead now; if not, it waits
        as a journal row (read back in (priority, id) order with its page)."""
        if self.count() < self.limit and not self.journal_queued:
            return True
        if priority > self.floor:
            self.drop()
            return True
        self.journal_queued = True
        return False

    def drop(self) -> None:
        """Send the look-ahead back to the journal: a higher priority arrived, and the next
        page is read in (priority, id) order again."""
        for other in list(self.jobs.values()):
            if (
                other.state == JobState.QUEUED
                and (other.task is None or other.task.done())
                and not other.creating_noted  # its noted POST is answered here
                and other.id not in self.elsewhere
            ):
                self.release(other)
        self.ready = [e for e in self.ready if self.jobs.get(e[1]) is e[3]]
        heapq.heapify(self.ready)
        self.floor = _NO_FLOOR  # hold lowers it

    def refill(self) -> None:
        """Read the next page of queued jobs from the journal's queue index."""
        self.journal_queued = False
        if self.count() == 0:
            self.floor = _NO_FLOOR  # hold lowers it
        want = self.limit - self.count()
        # The held jobs' rows may still read `queued` (a running job's state is journaled
        # late): read past them.
        for rec in self.session.queued(len(self.jobs) + want + 1):
            if rec.id in self.jobs:
                continue
            if want <= 0:
                self.journal_queued = True
                break
            self.hold(job_from_record(rec))
            want -= 1

    def push_ready(self, job: Job) -> None:
        heapq.heappush(self.ready, (-job.priority, job.id, next(self._seq), job))
        if len(self.ready) > 4 * self.limit + len(self.jobs):  # stale entries: drop them
            self.ready = [
                e
                for e in self.ready
                if self.jobs.get(e[1]) is e[3] and e[3].state == JobState.QUEUED
            ]
            heapq.heapify(self.ready)

    def refill_due(self) -> bool:
        """Whether `pop_runnable` reads the next page of the queue from the journal."""
        return self.journal_queued and self.count() <= self.limit // 2

    def pop_runnable(self) -> Job | None:
        """The queued job to start next (highest priority, then oldest), or None."""
        later: list[Entry] = []
        found: Job | None = None
        if self.refill_due():
            self.refill()  # the next page of the queue, by index
        while self.ready:
            entry = heapq.heappop(self.ready)
            priority, job_id, _, job = entry
            if (
                job.state != JobState.QUEUED
                or -priority != job.priority
                or job_id in self.elsewhere
                or self.jobs.get(job_id) is not job
            ):
                continue  # stale: it started, changed state or priority since it was pushed
            if job.task is not None and not job.task.done():
                later.append(entry)  # still winding down: try again on the next wake
                continue
            found = job
            break
        for entry in later:
            heapq.heappush(self.ready, entry)
        return found

    def queued_here(self) -> int:
        """Queued jobs this process will start (from the counters: no pass over the queue)."""
        elsewhere = sum(
            1
            for job_id in self.elsewhere
            if (j := self.jobs.get(job_id)) is not None and j.state == JobState.QUEUED
        )
        return self.counters.count[JobState.QUEUED] - elsewhere
