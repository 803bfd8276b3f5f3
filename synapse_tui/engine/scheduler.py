"""The upload manager: a queue of jobs, bounded concurrency, pause/drain/cancel, limits.

Front ends (headless CLI, dashboard) drive only this class and listen to its events.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import heapq
import itertools
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from synapse_tui.engine import ownership
from synapse_tui.engine.collections import CollectionPlan, Registrar
from synapse_tui.engine.errors import FatalError, FileError, SynapseError
from synapse_tui.engine.events import (
    Event,
    FatalStop,
    JobDone,
    JobFailed,
    JobProgress,
    JobQueued,
    JobSkipped,
    JobState,
    JobStateChanged,
    Listener,
    LogMessage,
    ScanProgress,
    TotalProgress,
)
from synapse_tui.engine.health import BackendHealth
from synapse_tui.engine.journal import JobKey, JobRecord, Journal
from synapse_tui.engine.limits import Backoff, Bandwidth, Gate
from synapse_tui.engine.meter import Meter
from synapse_tui.engine.names import display_path
from synapse_tui.engine.protocol import ProtocolClient, UploadInfo
from synapse_tui.engine.scan import FoundFile, Refused, scan
from synapse_tui.engine.session import SeenKey, Session
from synapse_tui.engine.states import Counters, check
from synapse_tui.engine.uploader import Job, Paused, RetriesExhausted, fits_whole

log = logging.getLogger("synapse_tui.engine")


def _by_id(job: Job) -> int:
    return job.id


# How long a finished upload's journal note may wait for company: the next ordinary
# write (a batch of "creating" notes, a state change) or this timer commits it, along
# with the notes of other files finished meanwhile. Lost to a crash, the note is found
# again on the server (see journal.py).
LAZY_COMMIT_DELAY = 0.005
# A small file's "creating" note (its whole-file POST may be sent) is journaled ahead for
# up to this many queued small files at once, in one write. Noted early is safe: after a
# crash, resume looks for such a file's upload on the server before sending it.
CREATING_AHEAD = 16
# What a job's upload left in its `extra` (not its collection plan): kept when re-planned.
_UPLOAD_KEYS = frozenset(
    {"uploaded", "data_file_id", "checksum", "file_key", "data_file_requested"}
)
RELATIVE_NOT_HERE = (
    "journaled with a relative path by an older synapse-tui, and not found from this"
    " folder: run `synapse-tui resume` in the folder the upload started in"
)
# Queued jobs held in memory ahead of dispatch, read from the journal's queue index a page
# at a time when fewer than half are left: the rest of the queue is only journal rows.
LOOKAHEAD = 256
# At the default concurrency, small files in flight per slot (EngineOptions.small_boost):
# see docs/scale.md for the measurements that chose it.
SMALL_BOOST = 4
_NO_FLOOR = 1 << 62


@dataclass
class EngineOptions:
    """How the engine behaves; the CLI and the dashboard fill it from Settings."""

    host: str
    chunk_size: int = 50 * 1024 * 1024
    concurrency: int = 4
    bwlimit: float | None = None
    retries: int = 12
    backoff_base: float = 1.0
    backoff_cap: float = 60.0
    stall_timeout: float = 120.0  # no body progress for this long: the request is abandoned
    response_timeout: float = 300.0  # body sent, no complete answer within this long
    settle_delay: float = 1.0  # after an unknown outcome, wait before re-reading the offset
    tick: float = 0.5  # progress events per job at most every `tick` seconds
    # A paused file finishes its in-flight chunk when that takes at most this long, so a
    # deliberate pause throws nothing away; a longer one is cut (resumed from the
    # server's offset, as after a cut connection).
    pause_grace: float = 5.0
    expiry: float | None = 86400.0  # server-side expiry, to warn when an ETA passes it
    strategy: str = "auto"  # auto | presigned | chunked (engine/presigned.py)
    # Small files (one request each) in flight per slot of `concurrency`: they are bound by
    # round trips, not bandwidth, so more of them at once is faster; a large file takes a
    # whole slot. The front ends use SMALL_BOOST; 1: every file takes a slot.
    small_boost: int = 1


@dataclass
class ScanTotals:
    files: int = 0
    bytes: int = 0
    duplicates: int = 0
    already_uploaded: int = 0
    skipped: int = 0
    failed: int = 0
    seconds: float = 0.0


class UploadManager:
    """Owns the jobs of one backend. Use as `async with UploadManager(...) as m:`."""

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
        # The jobs held in memory: active, the look-ahead of queued jobs, paused ones, and
        # those another process drives. Every other job of this manager is only a journal
        # row (see `session`): `get`, `window` and `totals` answer for all of them.
        self.jobs: dict[int, Job] = {}
        self.session = Session(journal)
        self.counters = Counters()
        self._held_queued = 0  # jobs in `jobs` whose state is QUEUED
        self._journal_queued = False  # queued rows may wait in the journal, not in memory
        self._floor = _NO_FLOOR  # the lowest priority in the look-ahead (a higher one refreshes it)
        self.bandwidth = Bandwidth(options.bwlimit)
        self.gate = Gate(options.concurrency, options.small_boost)
        self.backoff = Backoff(options.backoff_base, options.backoff_cap)
        self.meter = Meter()
        self.health = BackendHealth(self.emit)
        self.draining = False
        self.stopped: str | None = None  # the fatal error that stopped everything
        self.scan_totals = ScanTotals()
        self._scans = 0
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._dispatcher: asyncio.Task[None] | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._dirty: set[int] = set()
        self._running: set[Job] = set()  # jobs with a task; active() filters the done
        # Jobs that became QUEUED, by (-priority, id); stale entries are dropped when popped,
        # so dispatch never sorts every job (many small files: O(n) per file otherwise).
        self._ready: list[tuple[int, int, int, Job]] = []
        self._ready_seq = itertools.count()
        self._locked_elsewhere: set[int] = set()
        # Cancelled jobs with an upload on the server, by (path, fingerprint): queueing the
        # same file again resumes that upload instead of orphaning it.
        self._cancelled: dict[tuple[bytes, str], Job] = {}
        self.registrar = Registrar(self)
        self._units_task: asyncio.Task[None] | None = None
        # Called when an added file is a job this manager already holds (the engine service:
        # the `upload` that added it again follows it).
        self.on_held: Callable[[Job], None] | None = None

    # -- lifecycle --------------------------------------------------------------------------

    async def __aenter__(self) -> UploadManager:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def start(self) -> None:
        if self._dispatcher is None:
            loop = asyncio.get_running_loop()
            self.journal.defer_commits(lambda flush: loop.call_later(LAZY_COMMIT_DELAY, flush))
            self._dispatcher = asyncio.create_task(self._dispatch_loop(), name="dispatcher")
            self._ticker = asyncio.create_task(self._tick_loop(), name="ticker")

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
        for job in list(self.jobs.values()):
            if not job.state.terminal and job.state != JobState.PAUSED and job.state.active:
                self.set_state(job, JobState.PAUSED, message)
        self._emit_totals()
        self.journal.defer_commits(None)
        with contextlib.suppress(Exception):
            await self.client.aclose()

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
            self._cancelled[(job.path, job.fingerprint)] = job
        self.emit(JobStateChanged(job.id, state, message))
        self._maybe_release(job)

    def transition(self, job: Job, state: JobState) -> None:
        """The one place a job's state changes (`set_state` journals and tells around it):
        checked against the table of engine/states.py, counted, queued for dispatch."""
        old = job.state
        check(old, state)
        self.counters.leave(old, job.size, job.counted_sent)
        job.counted_sent = job.size if state == JobState.DONE else job.sent
        self.counters.enter(state, job.size, job.counted_sent)
        job.state = state
        if self.jobs.get(job.id) is job:
            self._held_queued += (state == JobState.QUEUED) - (old == JobState.QUEUED)
        if state == JobState.QUEUED:
            self._offer(job)

    def _hold(self, job: Job) -> None:
        """Keep `job` in memory (it is about to run, or runs)."""
        if self.jobs.get(job.id) is job:
            return
        self.jobs[job.id] = job
        if job.state == JobState.QUEUED:
            self._held_queued += 1
            self._floor = min(self._floor, job.priority)
            self._push_ready(job)

    def _release(self, job: Job) -> None:
        """Forget `job` in memory: from now on it is its journal row and its counters."""
        if self.jobs.get(job.id) is not job:
            return
        del self.jobs[job.id]
        if job.state == JobState.QUEUED:
            self._held_queued -= 1
            self._journal_queued = True
        self.counters.add_sent(job.state, job.sent - job.counted_sent)
        job.counted_sent = job.sent

    def _maybe_release(self, job: Job) -> None:
        """A job that will not run again here leaves memory; its row says the rest."""
        if (
            job.state.terminal
            and (job.task is None or job.task.done())
            and job.id not in self._locked_elsewhere
            and job.extra.get("collection") is None  # the registrar pairs twins in memory
        ):
            self._release(job)

    def _offer(self, job: Job) -> None:
        """A job became queued: into the look-ahead if it has room (or the job outranks
        it), else it waits in the journal for the next page."""
        if self.jobs.get(job.id) is job:
            self._push_ready(job)
        elif self._room_for(job.priority):
            self._hold(job)

    def _lookahead(self) -> int:
        """Queued jobs held that this process may start: those another process drives stay
        held and queued here, and must not take the look-ahead's room (nor stop its refill)."""
        return max(0, self._held_queued - len(self._locked_elsewhere))

    def _room_for(self, priority: int) -> bool:
        """Whether a queued job of `priority` joins the look-ahead now; if not, it waits
        as a journal row (read back in (priority, id) order with its page)."""
        if self._lookahead() < LOOKAHEAD and not self._journal_queued:
            return True
        if priority > self._floor:
            self._drop_lookahead()
            return True
        self._journal_queued = True
        return False

    def _drop_lookahead(self) -> None:
        """Send the look-ahead back to the journal: a higher priority arrived, and the next
        page is read in (priority, id) order again."""
        for other in list(self.jobs.values()):
            if (
                other.state == JobState.QUEUED
                and (other.task is None or other.task.done())
                and not other.creating_noted  # its noted POST is answered here
                and other.id not in self._locked_elsewhere
            ):
                self._release(other)
        self._ready = [e for e in self._ready if self.jobs.get(e[1]) is e[3]]
        heapq.heapify(self._ready)
        self._floor = _NO_FLOOR  # _hold lowers it

    def _refill(self) -> None:
        """Read the next page of queued jobs from the journal's queue index."""
        self._journal_queued = False
        if self._lookahead() == 0:
            self._floor = _NO_FLOOR  # _hold lowers it
        want = LOOKAHEAD - self._lookahead()
        # The held jobs' rows may still read `queued` (a running job's state is journaled
        # late): read past them.
        for rec in self.session.queued(len(self.jobs) + want + 1):
            if rec.id in self.jobs:
                continue
            if want <= 0:
                self._journal_queued = True
                break
            self._hold(self._job_from_record(rec))
            want -= 1

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
                and other.id not in self._locked_elsewhere  # its row is not ours to write
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
        self._dirty.add(job.id)

    def finish(self, job: Job, md5: str, info: UploadInfo) -> None:
        key = JobKey(job.id, job.path, job.size, job.fingerprint, self.options.host)
        job.md5 = md5
        job.upload_id = info.id
        job.offset = job.sent = job.size
        # With a collection, the job goes on to register the upload (data file, data unit).
        state = JobState.REGISTERING if job.extra.get("collection") is not None else JobState.DONE
        if state == JobState.REGISTERING:
            job.extra["uploaded"] = True
        # A plain upload's note may wait up to LAZY_COMMIT_DELAY for the next write (one
        # commit for both): lost to a crash, resume finds the upload complete on the
        # server. A job that goes on to register has its note committed at once.
        lazy = state == JobState.DONE
        self.health.ok()
        self.journal.complete(
            key, md5, info.id, job.resumed_from, info.record(), state, job.extra, lazy=lazy
        )
        self.transition(job, state)
        self.emit(JobStateChanged(job.id, state))
        self.emit(JobDone(job.id, job.display, job.size, md5, info.id, job.resumed_from))

    # -- adding work ------------------------------------------------------------------------

    def _job_from_record(self, rec: JobRecord) -> Job:
        return Job(
            id=rec.id,
            path=rec.path,
            size=rec.size,
            identity=rec.identity,
            fingerprint=rec.fingerprint,
            chunk_size=rec.chunk_size,
            priority=rec.priority,
            state=rec.state,
            upload_id=rec.upload_id,
            upload_url=rec.upload_url,
            offset=rec.offset,
            sent=rec.offset,
            attempts=rec.attempts,
            last_error=rec.last_error,
            md5=rec.md5,
            resumed_from=rec.resumed_from or 0,
            creating_since=rec.creating_since,
            extra=rec.extra,
            counted_sent=rec.offset,
        )

    def _enqueue(self, rec: JobRecord, resumed: bool) -> None:
        """Make the journal row `rec` a job of this manager: counted, and held in memory
        only if the look-ahead has room for it (else it waits as a row)."""
        if not self.session.add(rec.id):
            return  # already one of ours
        self.counters.enter(rec.state, rec.size, rec.offset)
        # A job this process just created is queued and known to no other process (its row
        # is not even committed yet): only a job from the journal may be driven elsewhere.
        if resumed and not self.journal.try_lock(rec.id):
            # Another process drives it: its journal row (state, offset) is not ours to write.
            job = self._job_from_record(rec)
            self.transition(job, JobState.QUEUED)
            self._hold(job)  # held, never dispatched: see _locked_elsewhere
            ownership.elsewhere(self, job)
        elif resumed:
            self.journal.unlock(rec.id)
            if rec.state != JobState.QUEUED:
                self.set_state(self._job_from_record(rec), JobState.QUEUED)
            elif self._room_for(rec.priority):
                self._hold(self._job_from_record(rec))
        elif self._room_for(rec.priority):
            self._hold(self._job_from_record(rec))
        self.emit(JobQueued(rec.id, display_path(rec.path), rec.size, resumed))
        self._kick()

    def resume_unfinished(self) -> int:
        """Queue every unfinished job of this host from the journal (paused ones too)."""
        count = 0
        # An older journal's relative paths: made absolute where this folder holds the file.
        relative = {r.id for r in ownership.adopt_relative(self.journal)}
        for rec in self.journal.unfinished_pages(self.options.host):
            if self.session.has(rec.id):
                continue
            if rec.id in relative:  # left as it is, resumable from its own folder
                self.emit(
                    JobFailed(None, display_path(rec.path), RELATIVE_NOT_HERE, resumable=True)
                )
                continue
            self._enqueue(rec, resumed=True)
            count += 1
        return count

    async def add_paths(
        self,
        paths: Sequence[str | bytes],
        *,
        force: bool = False,
        priority: int = 0,
        plan: CollectionPlan | None = None,
    ) -> ScanTotals:
        """Scan `paths` and queue every file as soon as its batch is hashed."""
        totals = ScanTotals()
        self._scans += 1
        self._idle.clear()
        # Duplicates within this scan: an index in the journal's TEMP tables, read and
        # written once per batch (a dict of every file met would grow with the folder).
        scan_id = self.session.new_scan()
        started = time.monotonic()
        last_emit = 0.0
        try:
            ownership.adopt_relative(self.journal)  # so an older job of these files is found
            absolute = [ownership.absolute(os.fsencode(p)) for p in paths]
            async for batch in scan(absolute):
                with self.journal.batch():  # one commit for the batch's new jobs
                    found = [i for i in batch if not isinstance(i, Refused)]
                    known = self.journal.known_fingerprints(
                        self.options.host, [i.fingerprint for i in found]
                    )
                    keys = [(i.identity.size, i.fingerprint) for i in found]
                    seen = self.session.seen(scan_id, keys) if not force else {}
                    before = set(seen)
                    for item in batch:
                        if isinstance(item, Refused):
                            self._refused(item, totals)
                            continue
                        totals.files += 1
                        totals.bytes += item.identity.size
                        self._accept(item, totals, seen, force, priority, plan, known)
                    self.session.note_seen(scan_id, {k: seen[k] for k in seen if k not in before})
                now = time.monotonic()
                if now - last_emit >= self.options.tick:
                    last_emit = now
                    self._emit_scan(totals)
        finally:
            totals.seconds = time.monotonic() - started
            self.session.end_scan(scan_id)
            self._scans -= 1
            self._merge_scan(totals)
            self._emit_scan(totals, done=True)
            self._kick()
        return totals

    def _refused(self, item: Refused, totals: ScanTotals) -> None:
        if item.error:
            totals.failed += 1
            self.emit(JobFailed(None, item.display, item.reason))
        else:
            totals.skipped += 1
            self.emit(JobSkipped(None, item.display, item.reason))

    def _accept(
        self,
        item: FoundFile,
        totals: ScanTotals,
        seen: dict[SeenKey, str],
        force: bool,
        priority: int,
        plan: CollectionPlan | None = None,
        known: set[str] | None = None,
    ) -> None:
        """Queue `item` unless it is a duplicate, already uploaded, or already a job.
        `known`: the fingerprints of this batch that the ledger or an unfinished job has
        (`Journal.known_fingerprints`); any other needs no lookup."""
        key = (item.identity.size, item.fingerprint)
        host = self.options.host
        lookup = known is None or item.fingerprint in known
        extra: dict[str, object] | None = None
        if plan is not None:
            try:
                extra = plan.job_extra(item.path)
            except FileError as exc:  # fails before anything is uploaded
                totals.failed += 1
                self.emit(JobFailed(None, item.display, str(exc)))
                return
        if not force:
            if key in seen and extra is None:
                totals.duplicates += 1
                self.emit(JobSkipped(None, item.display, f"duplicate of {seen[key]}"))
                return
            if key in seen and extra is not None:  # its unit needs it: see Registrar.borrow
                extra["twin"] = True
            seen.setdefault(key, item.display)
            entry = (
                self.journal.uploaded(host, item.fingerprint, item.identity.size)
                if lookup
                else None
            )
            if entry is not None and extra is not None:
                unit = self.journal.registered(host, item.fingerprint, extra["collection"])
                if unit is None:  # uploaded before, not yet in this collection: register it
                    extra.update(uploaded=True)
                    known_file = self.journal.data_file_of(host, item.fingerprint, entry.size)
                    if known_file is not None:  # e.g. a presigned upload's: no chunked upload
                        extra.update(data_file_id=known_file[0], checksum=known_file[1])
                    self._new_job(item, priority, extra, entry.upload_id, entry.md5)
                    return
                totals.already_uploaded += 1
                self.emit(
                    JobSkipped(None, item.display, f"already in collection (data unit {unit})")
                )
                return
            if entry is not None:
                totals.already_uploaded += 1
                self.emit(
                    JobSkipped(None, item.display, f"already uploaded (upload {entry.upload_id})")
                )
                return
        cancelled = self._cancelled.pop((item.path, item.fingerprint), None)
        if cancelled is not None and cancelled.state == JobState.CANCELLED:
            if extra is not None:
                self._replan(cancelled, extra)
            self._revive(cancelled)
            return
        existing = (
            self.journal.find_unfinished(item.path, item.fingerprint, host) if lookup else None
        )
        if existing is None and lookup:  # cancelled in an earlier session: resume its upload
            existing = self._revive_row(item, extra)
        if existing is not None:
            if not self.session.has(existing.id):
                self._enqueue(existing, resumed=True)
            elif self.on_held is not None:  # the engine service: the adding batch follows it
                self.on_held(self.jobs.get(existing.id) or self._job_from_record(existing))
            return
        self._new_job(item, priority, extra)
        if known is not None:
            known.add(item.fingerprint)  # now a job: the same content again is looked up

    def _replan(self, job: Job, extra: dict[str, object]) -> None:
        """A cancelled job queued again with a collection plan takes it (it kept the old
        one, so the plan given now was lost). What the upload itself left (its data file)
        is kept; a unit asked for in the same collection keeps the old plan whole."""
        old = job.extra
        unit_asked = old.get("unit_id") is not None or old.get("unit_requested")
        if unit_asked and old.get("collection") == extra.get("collection"):
            return  # its unit may exist already: never a second one
        kept = {k: v for k, v in old.items() if k in _UPLOAD_KEYS}
        job.extra = {**kept, **extra}
        self.journal.update(job.id, extra=job.extra)

    def _revive(self, job: Job) -> None:
        """Queue a cancelled job again: its upload resumes where the server holds it."""
        job.cancel_requested = job.pause_requested = False
        job.reset_retries()
        self.log("info", f"{job.display}: queued again, resuming its cancelled upload", job.id)
        self.set_state(job, JobState.QUEUED)
        self.emit(JobQueued(job.id, job.display, job.size, resumed=True))
        self._kick()

    def _revive_row(self, item: FoundFile, extra: dict[str, object] | None) -> JobRecord | None:
        """The journal's cancelled job of this file with an upload (cancelled in an earlier
        session), made queueable again: `_prepare` asks the server for that upload and goes
        on from its offset, or starts a new one (one warning) when the server lost it."""
        rec = self.journal.find_cancelled(item.path, item.fingerprint, self.options.host)
        if rec is None or self.session.has(rec.id):
            return None
        if extra is not None:
            job = self._job_from_record(rec)
            self._replan(job, extra)
            rec.extra = job.extra
        self.journal.update(rec.id, attempts=0)
        rec.attempts = 0
        self.log("info", f"{display_path(rec.path)}: queued again, resuming its cancelled upload")
        return rec

    def _new_job(
        self,
        item: FoundFile,
        priority: int,
        extra: dict[str, object] | None,
        upload_id: str | None = None,
        md5: str | None = None,
    ) -> None:
        rec = self.journal.add_job(
            item.path,
            item.identity,
            item.fingerprint,
            self.options.host,
            self.options.chunk_size,
            priority,
            extra,
        )
        if upload_id is not None:
            self.journal.update(rec.id, upload_id=upload_id, md5=md5)
            rec = self.journal.get(rec.id)
        self._enqueue(rec, resumed=False)

    def _merge_scan(self, totals: ScanTotals) -> None:
        t = self.scan_totals
        for name in ScanTotals.__dataclass_fields__:
            setattr(t, name, getattr(t, name) + getattr(totals, name))

    def _emit_scan(self, totals: ScanTotals, done: bool = False) -> None:
        self.emit(
            ScanProgress(
                totals.files,
                totals.bytes,
                totals.duplicates,
                totals.already_uploaded,
                totals.skipped,
                done=done and self._scans == 0,
                failed=totals.failed,
            )
        )

    # -- control ----------------------------------------------------------------------------

    def _kick(self) -> None:
        self._wake.set()
        self._update_idle()

    def get(self, job_id: int) -> Job | None:
        """A job of this manager: the one in memory, else a copy read from its journal row
        (changing the copy changes nothing: use the control methods)."""
        job = self.jobs.get(job_id)
        if job is not None:
            return job
        rec = self.session.get(job_id)
        return self._job_from_record(rec) if rec is not None else None

    def window(self, offset: int, limit: int, state: JobState | None = None) -> list[Job]:
        """Jobs of this manager by id from `offset` (those in `state`), read by index
        from the journal: a queue view's page costs its length, whatever the queue's.
        Jobs in memory are given as they are now (their row may lag a few ms)."""
        if state is not None and state.active:
            # Active states live in memory (journaled late): no row to read.
            live = sorted((j for j in self.jobs.values() if j.state == state), key=_by_id)
            return live[offset : offset + limit]
        out: list[Job] = []
        for rec in self.session.window(offset, max(0, limit), state):
            job = self.jobs.get(rec.id) or self._job_from_record(rec)
            if state is None or job.state == state:
                out.append(job)
        return out

    def _loaded(self, job_id: int) -> Job | None:
        """The job to act on: held in memory, or read from its row (not held: a state
        change offers it to the look-ahead if it becomes queued)."""
        return self.get(job_id)

    def _each(self, state: JobState) -> Iterator[Job]:
        """Every job of this manager in `state`: those in memory, then the rows, a page at
        a time (a bulk pause or retry of a million jobs holds one page)."""
        yield from [j for j in self.jobs.values() if j.state == state]
        for rec in self.session.each(state):
            if rec.id not in self.jobs:
                yield self._job_from_record(rec)

    def pause(self, job_id: int) -> None:
        job = self._loaded(job_id)
        if job is None or job.state.terminal or job.state == JobState.PAUSED:
            return
        job.pause_requested = True
        job.wake.set()
        if job.task is None or job.task.done():
            self.set_state(job, JobState.PAUSED, "paused")
        else:
            asyncio.get_running_loop().call_later(
                self.options.pause_grace, self._cut_for_pause, job, job.task
            )
        self._kick()

    def _cut_for_pause(self, job: Job, task: asyncio.Task[None]) -> None:
        if job.pause_requested and job.task is task and not task.done():
            job.pause_cut = True
            task.cancel()

    def resume(self, job_id: int) -> None:
        job = self._loaded(job_id)
        if job is None:
            return
        job.pause_requested = False
        if job.state == JobState.PAUSED and (job.task is None or job.task.done()):
            job.reset_retries()
            self.set_state(job, JobState.QUEUED)
        self._kick()

    def pause_all(self) -> None:
        for job_id in list(self.jobs):
            self.pause(job_id)
        with self.journal.batch():  # the queue's rows: one commit
            for job in self._each(JobState.QUEUED):
                if job.id in self.jobs:
                    self.pause(job.id)
                else:
                    self._pause_row(job)

    def _pause_row(self, job: Job) -> None:
        if job.id not in self._locked_elsewhere:
            self.set_state(job, JobState.PAUSED, "paused")

    def resume_all(self) -> None:
        self.draining = False
        for job_id in list(self.jobs):
            self.resume(job_id)
        with self.journal.batch():
            for job in self._each(JobState.PAUSED):
                if job.id not in self.jobs:
                    job.reset_retries()
                    self.set_state(job, JobState.QUEUED)
                    self.journal.update(job.id, attempts=0)
        self._kick()

    def cancel(self, job_id: int) -> None:
        job = self._loaded(job_id)
        if job is None or job.state.terminal:
            return
        job.cancel_requested = True
        if job.task is not None and not job.task.done():
            job.task.cancel()
        else:
            self.set_state(job, JobState.CANCELLED, "cancelled")
        self._kick()

    def retry_failed(self) -> int:
        """Queue the failed jobs again, and cut short the backoff of the ones retrying."""
        count = 0
        for job in self._running:
            job.wake.set()  # a job in `_sleep` retries now; one not sleeping ignores it
        with self.journal.batch():
            for job in self._each(JobState.FAILED):
                job.reset_retries()
                job.restarts = 0
                job.cancel_requested = job.pause_requested = False
                self.set_state(job, JobState.QUEUED)
                self.journal.update(job.id, attempts=0)  # read back with its page
                count += 1
        self._kick()
        return count

    def drain(self) -> None:
        """Finish what is in flight, start nothing new."""
        self.draining = True
        self._kick()

    def undrain(self) -> None:
        self.draining = False
        self._kick()

    async def set_concurrency(self, n: int) -> None:
        await self.gate.set_capacity(max(1, min(64, n)))
        self.options.concurrency = self.gate.capacity
        self._kick()

    def set_bwlimit(self, rate: float | None) -> None:
        self.bandwidth.set_rate(rate)
        self.options.bwlimit = self.bandwidth.rate

    def set_priority(self, job_id: int, priority: int) -> None:
        job = self._loaded(job_id)
        if job is not None:
            job.priority = priority
            self.journal.update(job_id, priority=priority)
            if job.state == JobState.QUEUED:
                self._offer(job)
            self._kick()

    # -- dispatch ---------------------------------------------------------------------------

    def _not_running(self, job: Job, _task: object) -> None:
        self._running.discard(job)

    def _push_ready(self, job: Job) -> None:
        heapq.heappush(self._ready, (-job.priority, job.id, next(self._ready_seq), job))
        if len(self._ready) > 4 * LOOKAHEAD + len(self.jobs):  # stale entries: drop them
            self._ready = [
                e
                for e in self._ready
                if self.jobs.get(e[1]) is e[3] and e[3].state == JobState.QUEUED
            ]
            heapq.heapify(self._ready)

    def _pop_runnable(self) -> Job | None:
        """The queued job to start next (highest priority, then oldest), or None."""
        later: list[tuple[int, int, int, Job]] = []
        found: Job | None = None
        if self._journal_queued and self._lookahead() <= LOOKAHEAD // 2:
            self._refill()  # the next page of the queue, by index
        while self._ready:
            entry = heapq.heappop(self._ready)
            priority, job_id, _, job = entry
            if (
                job.state != JobState.QUEUED
                or -priority != job.priority
                or job_id in self._locked_elsewhere
                or self.jobs.get(job_id) is not job
            ):
                continue  # stale: it started, changed state or priority since it was pushed
            if job.task is not None and not job.task.done():
                later.append(entry)  # still winding down: try again on the next wake
                continue
            found = job
            break
        for entry in later:
            heapq.heappush(self._ready, entry)
        return found

    async def _dispatch_loop(self) -> None:
        while True:
            self._wake.clear()
            if not self.draining and self.stopped is None:
                while self.gate.free() and (job := self._pop_runnable()) is not None:
                    weight = 1 if fits_whole(job) else self.options.small_boost
                    if not self.gate.free(weight):  # a large file waits for a whole slot
                        self._push_ready(job)
                        break
                    if not self.journal.try_lock(job.id):
                        ownership.elsewhere(self, job)
                        continue
                    if not ownership.claim(self, job):  # another process finished it
                        self.journal.unlock(job.id)
                        self._maybe_release(job)
                        continue
                    self.gate.take(weight)
                    job.slot = weight
                    job.task = asyncio.create_task(self._run(job), name=f"job-{job.id}")
                    self._running.add(job)
                    job.task.add_done_callback(functools.partial(self._not_running, job))
            self._maybe_register_units()
            self._update_idle()
            await self._wake.wait()

    async def _run(self, job: Job) -> None:
        job.pause_requested = job.cancel_requested = job.pause_cut = False
        job.meter = Meter()
        try:
            if not job.extra.get("uploaded") and not await self.registrar.borrow(job):
                from synapse_tui.engine.presigned import run_upload  # chooses the path per job

                await run_upload(self, job)
            if job.extra.get("uploaded") and not job.extra.get("data_file_id"):
                self.set_state(job, JobState.REGISTERING, "registering the data file")
                await self.registrar.data_file(job)
            if job.extra.get("uploaded") and job.state != JobState.REGISTERING:
                self.set_state(job, JobState.REGISTERING)
        except Paused:
            self.set_state(job, JobState.PAUSED, "paused")
        except RetriesExhausted as exc:
            self.set_state(job, JobState.PAUSED, f"{exc} (resumable)")
            self.emit(JobFailed(job.id, job.display, str(exc), resumable=True))
        except asyncio.CancelledError:
            if job.cancel_requested:
                self.set_state(job, JobState.CANCELLED, "cancelled")
            elif job.pause_cut:
                self.set_state(job, JobState.PAUSED, "paused")
            elif self.stopped is not None:  # a fatal stop: leave no job "uploading"
                self.set_state(job, JobState.PAUSED, f"stopped: {self.stopped}")
            else:
                raise
        except FatalError as exc:
            self.set_state(job, JobState.PAUSED, f"stopped: {exc}")
            self._fatal(exc)
        except FileError as exc:
            self._fail(job, str(exc))
        except SynapseError as exc:
            self._fail(job, str(exc))
        except Exception as exc:
            log.exception("internal error on job %s", job.id)
            self._fail(job, f"internal error: {type(exc).__name__}: {exc}")
        finally:
            job.sent = job.offset if job.state != JobState.DONE else job.size
            self.journal.unlock(job.id)
            await self.gate.release(job.slot)
            self._dirty.add(job.id)
            self._kick()
            asyncio.get_running_loop().call_soon(self._maybe_release, job)  # once its task ends

    def fail(self, job: Job, message: str) -> None:
        self._fail(job, message)

    def _fail(self, job: Job, message: str) -> None:
        self.journal.add_error(job.id, message)
        self.set_state(job, JobState.FAILED, message)
        self.emit(JobFailed(job.id, job.display, message))

    def _fatal(self, exc: FatalError) -> None:
        if self.stopped is not None:
            return
        self.stopped = str(exc)
        for other in list(self.jobs.values()):
            if other.task is not None and not other.task.done():
                other.pause_requested = True
                other.task.cancel()
            elif other.id in self._locked_elsewhere:
                continue  # another process drives it: its row is not ours to write
            elif other.state == JobState.QUEUED or other.state.active:
                # active without a task: registered, waiting for its data unit step
                self.set_state(other, JobState.PAUSED, f"stopped: {exc}")
        with self.journal.batch():  # the queue's rows that wait in the journal
            for row in self._each(JobState.QUEUED):
                if row.id not in self.jobs:
                    self.set_state(row, JobState.PAUSED, f"stopped: {exc}")
        self.emit(FatalStop(str(exc)))
        self._kick()

    # -- idle and progress ------------------------------------------------------------------

    def active(self) -> list[Job]:
        # Only jobs given a task can be active: no pass over every job (O(n) per event,
        # O(n^2) over a batch of many small files).
        return [j for j in self._running if j.task is not None and not j.task.done()]

    def _maybe_register_units(self) -> None:
        """Once nothing uploads or scans, create the data units of registered files."""
        if self._units_task is not None and not self._units_task.done():
            return
        if self._scans or self.active() or self.stopped is not None:
            return
        if self._queued_here() and not self.draining:
            return
        if self.registrar.pending():
            self._units_task = asyncio.create_task(self._register_units(), name="units")

    async def _register_units(self) -> None:
        try:
            await self.registrar.units()
        except FatalError as exc:
            self._fatal(exc)
        except SynapseError as exc:
            for job in self.registrar.pending():
                self._fail(job, f"data unit: {exc}")
        finally:
            self._kick()

    def _update_idle(self) -> None:
        units = self._units_task is not None and not self._units_task.done()
        busy = units or self._scans > 0 or bool(self.active())
        if not busy and not self.draining and self.stopped is None:
            busy = self._queued_here() > 0
        if not busy and self.registrar.pending() and self.stopped is None:
            busy = True  # the units step is about to start
        if busy:
            self._idle.clear()
        else:
            self._idle.set()

    def _queued_here(self) -> int:
        """Queued jobs this process will start (from the counters: no pass over the queue)."""
        elsewhere = sum(
            1
            for job_id in self._locked_elsewhere
            if (j := self.jobs.get(job_id)) is not None and j.state == JobState.QUEUED
        )
        return self.counters.count[JobState.QUEUED] - elsewhere

    def is_idle(self) -> bool:
        """Nothing runs and nothing will start (what wait_idle waits for), asked now."""
        self._update_idle()
        return self._idle.is_set()

    def driven_elsewhere(self, job_id: int) -> bool:
        """Another process holds this job's lock: it will not start here."""
        return job_id in self._locked_elsewhere

    async def wait_idle(self) -> None:
        """Until nothing runs and nothing will start (queue empty, drained or stopped)."""
        while True:
            self._update_idle()
            await self._idle.wait()
            await asyncio.sleep(0)  # let cancelled tasks settle
            self._update_idle()
            if self._idle.is_set():
                return

    def totals(self) -> TotalProgress:
        """Totals over every job of this manager, from the counters kept on each state
        change plus the bytes the jobs in memory sent since: O(jobs in memory), never
        O(queue). Cancelled jobs count for neither the total nor the done bytes."""
        c = self.counters
        done = c.bytes_done()
        for job in self.jobs.values():
            if job.state not in (JobState.DONE, JobState.CANCELLED):
                done += job.sent - job.counted_sent
        total = c.bytes_total()
        rate = self.meter.sample()
        remaining = max(0, total - done)
        low, high = self.meter.eta_range(remaining)
        return TotalProgress(
            bytes_done=done,
            bytes_total=total,
            files_done=c.count[JobState.DONE],
            files_total=c.files,
            rate=rate,
            eta=self.meter.eta(remaining),
            eta_low=low,
            eta_high=high,
            counts={state.value: n for state, n in c.count.items()},
            stalled=remaining > 0 and self.meter.stalled() and bool(self._running),
        )

    def _emit_totals(self) -> None:
        self.emit(self.totals())

    async def _tick_loop(self) -> None:
        warned_expiry: set[int] = set()
        while True:
            await asyncio.sleep(self.options.tick)
            dirty, self._dirty = self._dirty, set()
            for job_id in dirty:
                job = self.jobs.get(job_id)
                if job is None:
                    continue
                rate = job.meter.rate()
                eta = job.meter.eta(job.size - job.sent) if job.state.active else None
                self.emit(JobProgress(job.id, job.sent, job.size, rate, eta))
                expiry = self.options.expiry
                if eta and expiry and eta > expiry and job.id not in warned_expiry:
                    warned_expiry.add(job.id)
                    self.log(
                        "warning",
                        f"{job.display}: at this rate the upload outlives the server's "
                        f"{expiry / 3600:.0f}h expiry",
                        job.id,
                    )
            if dirty or self.active():
                self._emit_totals()
