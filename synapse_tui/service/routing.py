"""Which client gets which engine event: subscribers get all, a batch's follower its own."""

from __future__ import annotations

import asyncio
import contextvars
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from synapse_tui.engine.events import (
    Event,
    FatalStop,
    JobProgress,
    JobQueued,
    JobState,
    JobStateChanged,
    LogMessage,
    ScanProgress,
    TotalProgress,
    UnitRegistered,
)
from synapse_tui.engine.scheduler import UploadManager
from synapse_tui.engine.states import Counters
from synapse_tui.engine.uploader import Job
from synapse_tui.service.batch_jobs import BatchJobs, Member
from synapse_tui.service.peer import Peer
from synapse_tui.service.wire import EVENT_KINDS, event_to_wire

# The batch whose `add` is running: events emitted inside its task (the scan, queued
# files, refused files) carry it; events of its jobs' own tasks are matched by job id.
CURRENT_BATCH: contextvars.ContextVar[Batch | None] = contextvars.ContextVar(
    "synapse_batch", default=None
)


@dataclass(eq=False)
class Batch:
    """The jobs one `add` (or `resume`) queued, followed by the client that asked.

    Which jobs those are is a row each in the router's TEMP table (`batch_jobs.py`); the
    batch itself keeps counters by state (count, bytes, bytes sent) updated from the
    events, so its totals, "settled" and "left" never walk its jobs."""

    id: int
    peer: Peer | None
    collection: int | None = None
    counters: Counters = field(default_factory=Counters)
    task: asyncio.Task[Any] | None = None
    done: bool = False
    # Its jobs in an active state (the keys of `Router.active` that are its own): a tick
    # walks each batch's own, O(active jobs) in all, not O(batches x active jobs).
    running: set[int] = field(default_factory=set)
    # The event kinds its follower asked for (None: all of them).
    events: frozenset[str] | None = None

    def follower(self, kind: str) -> Peer | None:
        """The peer that follows this batch and wants events of `kind`, if any (a
        subscriber has every event already)."""
        peer = self.peer
        if peer is None or peer.subscribed:
            return None
        if self.events is not None and kind not in self.events:
            return None
        return peer


class Router:
    """The engine's one listener. Cost per event: the subscribers plus one batch."""

    PAGE = 500  # job ids per read when a batch's jobs are walked (a batch pause)

    def __init__(self) -> None:
        self.manager: UploadManager | None = None
        self.peers: set[Peer] = set()
        self.batches: dict[int, Batch] = {}
        # The followed jobs in an active state: (batch, bytes sent as counted). Bounded by
        # the engine's concurrency; progress events and live totals answer from it.
        self.active: dict[int, tuple[Batch, int]] = {}
        self.last_totals: TotalProgress | None = None
        self._ids = itertools.count(1)
        self._members: BatchJobs | None = None
        self._check: set[Batch] = set()
        self._check_handle: asyncio.Handle | None = None

    def new_batch(
        self,
        peer: Peer | None,
        collection: int | None = None,
        events: list[str] | None = None,
    ) -> Batch:
        batch = Batch(next(self._ids), peer, collection)
        batch.events = None if events is None else frozenset(events)
        self.batches[batch.id] = batch
        if peer is not None:
            peer.batches.add(batch.id)
        return batch

    def forget(self, batch: Batch) -> None:
        batch.done = True
        self.batches.pop(batch.id, None)
        for job_id in batch.running:
            self.active.pop(job_id, None)
        batch.running.clear()
        if self._members is not None:
            self._members.drop(batch.id)

    def peer_gone(self, peer: Peer) -> None:
        self.peers.discard(peer)
        for batch_id in list(peer.batches):
            batch = self.batches.get(batch_id)
            if batch is not None:
                batch.peer = None  # its jobs go on; nobody follows them
                if batch.task is None or batch.task.done():
                    self.forget(batch)

    # -- which batch a job belongs to -------------------------------------------------------

    def members(self) -> BatchJobs | None:
        """The table, made on the journal's connection once a manager exists (the journal
        outlives managers: `configure` rebuilds the manager, not the journal)."""
        if self._members is None and self.manager is not None:
            self._members = BatchJobs(self.manager.journal.connection)
        return self._members

    def owner(self, job_id: int) -> Batch | None:
        held = self.active.get(job_id)
        if held is not None:
            return held[0]
        members = self.members()
        row = members.get(job_id) if members is not None else None
        return self.batches.get(row.batch) if row is not None else None

    def _join(self, batch: Batch, job_id: int, state: JobState, size: int, sent: int) -> None:
        """`job_id` is now one of `batch`'s jobs (it leaves the batch that had it)."""
        members = self.members()
        if members is None:
            return
        row = members.get(job_id)
        if row is not None and (old := self.batches.get(row.batch)) is not None:
            old.counters.leave(row.state, row.size, row.sent)
        sent = size if state == JobState.DONE else sent
        batch.counters.enter(state, size, sent)
        members.put(job_id, Member(batch.id, state, size, sent))
        self._track(job_id, batch, state, sent)

    def _moved(self, job_id: int, state: JobState) -> Batch | None:
        """A followed job changed state: its batch's counters follow; returns that batch."""
        members = self.members()
        row = members.get(job_id) if members is not None else None
        if members is None or row is None:
            return None
        batch = self.batches.get(row.batch)
        job = self.manager.jobs.get(job_id) if self.manager is not None else None
        sent = row.size if state == JobState.DONE else (job.sent if job else row.sent)
        if batch is not None:
            batch.counters.leave(row.state, row.size, row.sent)
            batch.counters.enter(state, row.size, sent)
            self._track(job_id, batch, state, sent)
        members.move(job_id, state, sent)
        return batch

    def _track(self, job_id: int, batch: Batch, state: JobState, sent: int) -> None:
        held = self.active.pop(job_id, None)
        if held is not None:
            held[0].running.discard(job_id)
        # Not registering: its bytes are all sent (nothing for the totals to add), and one
        # waiting for its data unit is a journal row in the engine, not a job in memory
        # (engine/lookahead.py): the batch's counters say it is unsettled (`settled`).
        if state.active and state != JobState.REGISTERING:
            self.active[job_id] = (batch, sent)
            batch.running.add(job_id)

    def unfinished(self, batch: Batch) -> Iterator[int]:
        """The ids of `batch`'s jobs that are not final, a page at a time (by id)."""
        members = self.members()
        after = 0
        while members is not None:
            page = members.unfinished(batch.id, after, self.PAGE)
            yield from page
            if len(page) < self.PAGE:
                return
            after = page[-1]

    # -- the listener -----------------------------------------------------------------------

    def __call__(self, event: Event) -> None:
        batch = CURRENT_BATCH.get()
        job_id = getattr(event, "job_id", None)
        if isinstance(event, JobQueued) and batch is not None:
            # Queued as it is announced (a row kept paused says so in its next event); its
            # bytes already sent count from its next change, when it runs.
            self._join(batch, event.job_id, JobState.QUEUED, event.size, 0)
        owner = batch or (self.owner(job_id) if job_id is not None else None)
        if isinstance(event, JobStateChanged) and owner is not None:
            moved = self._moved(event.job_id, event.state)
            self.check_soon(moved or owner)
        if isinstance(event, TotalProgress):
            self.last_totals = event
        kind = EVENT_KINDS[type(event)]
        wire: dict[str, Any] | None = None  # encoded once, when someone takes it
        key = _coalesce_key(event)
        for peer in self.peers:
            if peer.subscribed:
                wire = wire or event_to_wire(event)
                peer.send(wire, key)
        targets: list[Batch] = []
        if owner is not None:
            targets.append(owner)
        elif isinstance(event, FatalStop) or (isinstance(event, LogMessage) and job_id is None):
            targets = list(self.batches.values())  # concerns everyone: a 429, a fatal stop
        elif isinstance(event, UnitRegistered):
            targets = [b for b in self.batches.values() if b.collection == event.collection]
        if isinstance(event, TotalProgress):
            for b in list(self.batches.values()):
                if (follower := b.follower(kind)) is not None:
                    follower.send(event_to_wire(self.batch_totals(b)), ("total", b.id))
                self.check_soon(b)  # a drained or stopped engine settles a batch on a tick
            return
        if isinstance(event, ScanProgress):
            return  # a batch gets its own scan line when its scan ends (commands._scan)
        for b in targets:
            if (follower := b.follower(kind)) is not None:
                wire = wire or event_to_wire(event)
                follower.send(wire, key and (key, b.id))
            if isinstance(event, FatalStop):
                self.check_soon(b)

    def adopt(self, job: Job) -> None:
        """A file added again that the engine already holds: the adding batch follows it
        (and a paused one goes on, as a new process would resume it from the journal)."""
        batch = CURRENT_BATCH.get()
        if batch is None or self.owner(job.id) is batch:
            return
        self.take(batch, job)
        if (peer := batch.follower(EVENT_KINDS[JobQueued])) is not None:
            peer.send(event_to_wire(JobQueued(job.id, job.display, job.size, resumed=True)))
        if job.state == JobState.PAUSED and self.manager is not None:
            self.manager.resume(job.id)

    def take(self, batch: Batch, job: Job) -> None:
        self._join(batch, job.id, job.state, job.size, job.sent)

    # -- batches ----------------------------------------------------------------------------

    def batch_totals(self, batch: Batch) -> TotalProgress:
        """The batch's own totals, as the engine's are for all: its counters plus the bytes
        its active jobs sent since their last change (O(active jobs), not O(batch))."""
        m = self.manager
        assert m is not None
        c = batch.counters
        done, total = c.bytes_done(), c.bytes_total()
        rate = 0.0
        for job_id in batch.running:
            job = m.jobs.get(job_id)
            if job is not None:
                done += job.sent - self.active[job_id][1]
                rate += job.meter.rate()
        eta = (total - done) / rate if rate > 0 else None
        files_done = c.count[JobState.DONE]
        return TotalProgress(done, total, files_done, c.files, rate, eta, eta, eta)

    def check_soon(self, batch: Batch) -> None:
        """Settle checks run after the current emit sequence (a job's "done" state comes
        just before its JobDone event, which must reach the client first)."""
        self._check.add(batch)
        if self._check_handle is None:
            self._check_handle = asyncio.get_running_loop().call_soon(self._run_checks)

    def _run_checks(self) -> None:
        self._check_handle = None
        batches, self._check = self._check, set()
        for batch in batches:
            if not batch.done and self.settled(batch):
                self.finish(batch)

    def settled(self, batch: Batch) -> bool:
        """Nothing of the batch runs and nothing of it will start without someone asking."""
        m = self.manager
        if m is None or (batch.task is not None and not batch.task.done()):
            return False
        if any(job_id in m.jobs for job_id in batch.running):
            return False  # it runs
        if batch.counters.count[JobState.REGISTERING] and m.stopped is None:
            return False  # registered: its data file, or its unit, is still to come
        queued = batch.counters.count[JobState.QUEUED]
        if queued == 0 or m.draining or m.stopped is not None:
            return True
        # Queued jobs another process drives will not start here: they do not hold it.
        # Only those are looked up (not every job in memory: a row read each, per tick).
        elsewhere = sum(
            1
            for job_id in list(m.queue.elsewhere)
            if (job := m.jobs.get(job_id)) is not None
            and job.state == JobState.QUEUED
            and self.owner(job_id) is batch
        )
        return queued <= elsewhere

    def left(self, batch: Batch) -> int:
        return sum(n for state, n in batch.counters.count.items() if not state.terminal)

    def finish(self, batch: Batch, stopped: str | None = None) -> None:
        if batch.done:
            return
        if batch.peer is not None:
            batch.peer.send(
                {
                    "event": "batch_done",
                    "batch": batch.id,
                    "left": self.left(batch),
                    "stopped": stopped,
                }
            )
        self.forget(batch)


def _coalesce_key(event: Event) -> Any:
    if isinstance(event, JobProgress):
        return ("job", event.job_id)
    if isinstance(event, TotalProgress):
        return "total"
    if isinstance(event, ScanProgress) and not event.done:
        return "scan"
    return None
