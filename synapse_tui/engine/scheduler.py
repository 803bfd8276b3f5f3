"""The upload manager: a queue of jobs, bounded concurrency, pause/drain/cancel, limits."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Sequence

from synapse_tui.engine.collections import CollectionPlan, Registrar
from synapse_tui.engine.controls import Controls
from synapse_tui.engine.errors import FatalError
from synapse_tui.engine.events import (
    Event,
    JobDone,
    JobState,
    JobStateChanged,
    Listener,
    LogMessage,
    TotalProgress,
)
from synapse_tui.engine.filters import PathFilter
from synapse_tui.engine.health import BackendHealth
from synapse_tui.engine.intake import RELATIVE_NOT_HERE, Intake, ScanTotals
from synapse_tui.engine.job import Job, fits_whole
from synapse_tui.engine.journal import JobKey, JobRecord, Journal
from synapse_tui.engine.limits import Backoff, Bandwidth, Gate
from synapse_tui.engine.lookahead import Lookahead
from synapse_tui.engine.meter import Meter
from synapse_tui.engine.options import EngineOptions
from synapse_tui.engine.protocol import ProtocolClient, UploadInfo
from synapse_tui.engine.runner import Runner
from synapse_tui.engine.session import Session
from synapse_tui.engine.states import Counters, check
from synapse_tui.engine.views import Views

__all__ = [
    "CREATING_AHEAD",
    "LOOKAHEAD",
    "RELATIVE_NOT_HERE",
    "SMALL_BOOST",
    "Counters",
    "EngineOptions",
    "ScanTotals",
    "UploadManager",
]

log = logging.getLogger("synapse_tui.engine")

# A small file's "creating" note (its whole-file POST may be sent) is journaled ahead for
# up to this many queued small files at once, in one write. Noted early is safe: after a
# crash, resume looks for such a file's upload on the server before sending it.
CREATING_AHEAD = 16
# Queued jobs held in memory ahead of dispatch, read from the journal's queue index a page
# at a time when fewer than half are left: the rest of the queue is only journal rows.
LOOKAHEAD = 256
# At the default concurrency, small files in flight per slot (EngineOptions.small_boost):
# see docs/scale.md for the measurements that chose it.
SMALL_BOOST = 4


class UploadManager:
    """Owns the jobs of one backend. Use as `async with UploadManager(...) as m:`.

    Front ends (headless CLI, dashboard, engine service) drive only this class and listen
    to its events. It holds the shared state (journal, client, limits, counters) and each
    job's state changes; the parts it owns do the rest: `queue` (Lookahead, lookahead.py)
    the jobs in memory, `intake` (intake.py) adding work, `runner` (runner.py) dispatch and
    outcomes, `views` (views.py) pages and totals, `controls` (controls.py) the verbs."""

    def __init__(
        self,
        client: ProtocolClient,
        journal: Journal,
        options: EngineOptions,
        listeners: Iterable[Listener] = (),
    ) -> None:
        self.client = client
        self.journal = journal
        self.options = options
        self.listeners: list[Listener] = list(listeners)
        self.session = Session(journal)
        # No request leaves before the journal writes that must precede it are committed
        # (journal.py): the client awaits them, the loop goes on meanwhile.
        client.barrier = journal.durable
        self.counters = Counters()
        self.queue = Lookahead(self.session, self.counters, LOOKAHEAD)
        # The jobs held in memory (see Lookahead); every other job of this manager is only
        # a journal row (see `session`): `get`, `window` and `totals` answer for all of them.
        self.jobs: dict[int, Job] = self.queue.jobs
        self.bandwidth = Bandwidth(options.bwlimit)
        self.gate = Gate(options.concurrency, options.small_boost)
        self.backoff = Backoff(options.backoff_base, options.backoff_cap)
        self.meter = Meter()
        self.health = BackendHealth(self.emit)
        self.draining = False
        self.stopped: str | None = None  # the fatal error that stopped everything
        self.intake = Intake(self)
        self.runner = Runner(self)
        self.views = Views(self)
        self.controls = Controls(self)
        self.registrar = Registrar(self)
        self._dispatcher: asyncio.Task[None] | None = None
        self._ticker: asyncio.Task[None] | None = None
        # Called when an added file is a job this manager already holds (the engine service:
        # the `upload` that added it again follows it).
        self.on_held: Callable[[Job], None] | None = None

    @property
    def scan_totals(self) -> ScanTotals:
        """Totals over every scan of this manager."""
        return self.intake.totals

    # -- lifecycle --------------------------------------------------------------------------

    async def __aenter__(self) -> UploadManager:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def start(self) -> None:
        if self._dispatcher is None:
            self._dispatcher = asyncio.create_task(self.runner.dispatch_loop(), name="dispatcher")
            self._ticker = asyncio.create_task(self.views.tick_loop(), name="ticker")

    async def close(self, message: str = "interrupted") -> None:
        """Stop everything now; jobs in flight stay resumable (journal: paused)."""
        for task in (self._dispatcher, self._ticker):
            if task is not None:
                task.cancel()
        running = [j for j in self.jobs.values() if j.task is not None and not j.task.done()]
        for job in running:
            assert job.task is not None
            job.task.cancel()
        for job in running:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await job.task  # type: ignore[misc]
        await self.runner.end_units()
        for job in list(self.jobs.values()):
            if not job.state.terminal and job.state != JobState.PAUSED and job.state.active:
                self.set_state(job, JobState.PAUSED, message)
        if self.counters.count[JobState.REGISTERING]:
            # Those waiting for their data unit are rows (engine/lookahead.py): paused too.
            self.controls.stop_rows(message, (JobState.REGISTERING,))
        self.views.emit_totals()
        from synapse_tui.engine import presigned  # as the runner's: only when closing

        await presigned.close(self)  # its early storage question, if still unanswered
        with contextlib.suppress(Exception):
            await self.client.aclose()
        await self.controls.finish()  # the bulk verbs' rows, as far as the journal lets them
        try:
            # Closed: every write of this manager is committed, unless another process holds
            # the journal's lock past its patience (then Journal.close says what is lost).
            await asyncio.wait_for(self.journal.settled(), self.journal.CLOSE_PATIENCE)
        except TimeoutError:
            pass
        except FatalError:
            if self.stopped is None:  # else told already (FatalStop)
                raise

    # -- events -----------------------------------------------------------------------------

    def subscribe(self, listener: Listener) -> None:
        self.listeners.append(listener)

    def emit(self, event: Event) -> None:
        for listener in self.listeners:
            try:
                listener(event)
            except Exception:  # a broken listener must not break the engine
                log.exception("event listener failed")

    def log(self, level: str, message: str, job_id: int | None = None) -> None:
        self.emit(LogMessage(level, message, job_id))

    # -- a job's state and progress ---------------------------------------------------------

    def set_state(
        self, job: Job, state: JobState, message: str = "", *, persist: bool = True
    ) -> None:
        """Change a job's state and tell the listeners; `persist=False` leaves the journal
        to a write the caller makes next anyway (one write instead of two)."""
        self.transition(job, state)
        values: dict[str, object] = {"state": state}
        if message and state in (JobState.FAILED, JobState.PAUSED):
            job.last_error = message
            values["last_error"] = message
        if persist:
            self.journal.update(job.id, **values)
        if state == JobState.CANCELLED and job.upload_url is not None:
            self.intake.cancelled[(job.path, job.fingerprint)] = job
        self.emit(JobStateChanged(job.id, state, message))
        self.queue.maybe_release(job)

    def transition(self, job: Job, state: JobState) -> None:
        """The one place a job's state changes (`set_state` journals and tells around it):
        checked against the table of engine/states.py, counted, queued for dispatch."""
        old = job.state
        check(old, state)
        self.counters.leave(old, job.size, job.counted_sent)
        job.counted_sent = job.size if state == JobState.DONE else job.sent
        self.counters.enter(state, job.size, job.counted_sent)
        job.state = state
        self.queue.moved(job, old)

    def note_creating(self, job: Job) -> None:
        """Journal `job.creating_since` before its whole-file POST, unless an earlier call
        did, along with the next queued small files (by id, as the scan added them)."""
        if job.creating_noted:
            job.creating_noted = False  # used once: a retry writes its own note
            return
        followers: list[Job] = []
        for job_id in range(job.id + 1, job.id + 2 * CREATING_AHEAD):
            other = self.jobs.get(job_id)
            if (
                other is not None
                and other.state == JobState.QUEUED
                and not other.creating_noted
                and other.task is None
                and other.id not in self.queue.elsewhere  # its row is not ours to write
                and fits_whole(other)
            ):
                followers.append(other)
                if len(followers) == CREATING_AHEAD - 1:
                    break
        assert job.creating_since is not None
        self.journal.mark_creating([job.id] + [f.id for f in followers], job.creating_since)
        for other in followers:
            other.creating_noted = True

    def count_bytes(self, job: Job, n: int) -> None:
        job.meter.add(n)
        self.meter.add(n)
        self.views.dirty.add(job.id)

    def finish(self, job: Job, md5: str, info: UploadInfo) -> None:
        key = JobKey(job.id, job.path, job.size, job.fingerprint, self.options.host)
        job.md5 = md5
        job.upload_id = info.id
        job.offset = job.sent = job.size
        # With a collection, the job goes on to register the upload (data file, data unit).
        state = JobState.REGISTERING if job.steps.plan is not None else JobState.DONE
        if state == JobState.REGISTERING:
            job.steps.uploaded = True
        # No request waits for a plain upload's note (lazy): lost to a crash, resume finds
        # the upload complete on the server. A job that goes on to register has its note
        # committed before its next request.
        lazy = state == JobState.DONE
        self.health.ok()
        self.journal.complete(
            key, md5, info.id, job.resumed_from, info.record(), state, job.steps, lazy=lazy
        )
        self.transition(job, state)
        self.emit(JobStateChanged(job.id, state))
        self.emit(JobDone(job.id, job.display, job.size, md5, info.id, job.resumed_from))

    # -- the collaborators' verbs, the front ends' API ----------------------------------------

    def resume_unfinished(self, keep_paused: Callable[[JobRecord], bool] | None = None) -> int:
        """Queue every unfinished job of this host from the journal (paused ones too);
        those `keep_paused` names (the user's pauses) are taken back paused instead."""
        return self.intake.resume_unfinished(keep_paused)

    async def add_paths(
        self,
        paths: Sequence[str | bytes],
        *,
        force: bool = False,
        priority: int = 0,
        plan: CollectionPlan | None = None,
        path_filter: PathFilter | None = None,
    ) -> ScanTotals:
        """Scan `paths` and queue every file as soon as its batch is hashed."""
        return await self.intake.add_paths(
            paths, force=force, priority=priority, plan=plan, path_filter=path_filter
        )

    def get(self, job_id: int) -> Job | None:
        return self.views.get(job_id)

    def window(self, offset: int, limit: int, state: JobState | None = None) -> list[Job]:
        return self.views.window(offset, limit, state)

    def totals(self) -> TotalProgress:
        return self.views.totals()

    def pause(self, job_id: int) -> None:
        self.controls.pause(job_id)

    def resume(self, job_id: int) -> None:
        self.controls.resume(job_id)

    def pause_all(self) -> None:
        self.controls.pause_all()

    def resume_all(self) -> None:
        self.controls.resume_all()

    def cancel(self, job_id: int) -> None:
        self.controls.cancel(job_id)

    def retry_failed(self) -> int:
        """Queue the failed jobs again, and cut short the backoff of the ones retrying."""
        return self.controls.retry_failed()

    def set_priority(self, job_id: int, priority: int) -> None:
        self.controls.set_priority(job_id, priority)

    def drain(self) -> None:
        """Finish what is in flight, start nothing new."""
        self.draining = True
        self.kick()

    def undrain(self) -> None:
        self.draining = False
        self.kick()

    async def set_concurrency(self, n: int) -> None:
        await self.gate.set_capacity(max(1, min(64, n)))
        self.options.concurrency = self.gate.capacity
        self.kick()

    def set_bwlimit(self, rate: float | None) -> None:
        self.bandwidth.set_rate(rate)
        self.options.bwlimit = self.bandwidth.rate

    def kick(self) -> None:
        """Something changed: dispatch looks for work again and idleness is re-read."""
        self.runner.kick()

    def fail(self, job: Job, message: str) -> None:
        self.runner.fail(job, message)

    def active(self) -> list[Job]:
        return self.runner.active()

    def is_idle(self) -> bool:
        """Nothing runs and nothing will start (what wait_idle waits for), asked now."""
        self.runner.update_idle()
        return self.runner.idle.is_set()

    def driven_elsewhere(self, job_id: int) -> bool:
        """Another process holds this job's lock: it will not start here."""
        return job_id in self.queue.elsewhere

    async def wait_idle(self) -> None:
        """Until nothing runs and nothing will start (queue empty, drained or stopped)."""
        await self.runner.wait_idle()
