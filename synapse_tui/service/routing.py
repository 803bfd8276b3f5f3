"""Which client gets which engine event: subscribers get all, a batch's follower its own."""

from __future__ import annotations

import asyncio
import contextvars
import itertools
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
from synapse_tui.engine.uploader import Job
from synapse_tui.service.peer import Peer
from synapse_tui.service.wire import EVENT_KINDS, event_to_wire

# The batch whose `add` is running: events emitted inside its task (the scan, queued
# files, refused files) carry it; events of its jobs' own tasks are matched by job id.
CURRENT_BATCH: contextvars.ContextVar[Batch | None] = contextvars.ContextVar(
    "synapse_batch", default=None
)
_UNSETTLED = frozenset(
    {
        JobState.QUEUED,
        JobState.HASHING,
        JobState.UPLOADING,
        JobState.FINALIZING,
        JobState.REGISTERING,
    }
)


@dataclass(eq=False)
class Batch:
    """The jobs one `add` (or `resume`) queued, followed by the client that asked."""

    id: int
    peer: Peer | None
    collection: int | None = None
    jobs: set[int] = field(default_factory=set)
    unsettled: set[int] = field(default_factory=set)
    # Each job's last known state and size, from the events: the engine holds only the
    # active jobs and its look-ahead in memory, the rest are journal rows.
    known: dict[int, tuple[JobState, int]] = field(default_factory=dict)
    task: asyncio.Task[Any] | None = None
    done: bool = False
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

    def __init__(self) -> None:
        self.manager: UploadManager | None = None
        self.peers: set[Peer] = set()
        self.batches: dict[int, Batch] = {}
        self.job_batch: dict[int, Batch] = {}
        self.last_totals: TotalProgress | None = None
        self._ids = itertools.count(1)
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
        for job_id in batch.jobs:
            if self.job_batch.get(job_id) is batch:
                del self.job_batch[job_id]

    def peer_gone(self, peer: Peer) -> None:
        self.peers.discard(peer)
        for batch_id in list(peer.batches):
            batch = self.batches.get(batch_id)
            if batch is not None:
                batch.peer = None  # its jobs go on; nobody follows them
                if batch.task is None or batch.task.done():
                    self.forget(batch)

    # -- the listener -----------------------------------------------------------------------

    def __call__(self, event: Event) -> None:
        batch = CURRENT_BATCH.get()
        job_id = getattr(event, "job_id", None)
        if isinstance(event, JobQueued) and batch is not None:
            batch.jobs.add(event.job_id)
            batch.unsettled.add(event.job_id)
            batch.known[event.job_id] = (JobState.QUEUED, event.size)
            self.job_batch[event.job_id] = batch
        owner = batch or (self.job_batch.get(job_id) if job_id is not None else None)
        if isinstance(event, JobStateChanged) and owner is not None:
            size = owner.known.get(event.job_id, (event.state, 0))[1]
            owner.known[event.job_id] = (event.state, size)
            if event.state in _UNSETTLED:
                owner.unsettled.add(event.job_id)
            else:
                owner.unsettled.discard(event.job_id)
            self.check_soon(owner)
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
        if batch is None or job.id in batch.jobs:
            return
        self.take(batch, job)
        if (peer := batch.follower(EVENT_KINDS[JobQueued])) is not None:
            peer.send(event_to_wire(JobQueued(job.id, job.display, job.size, resumed=True)))
        if job.state == JobState.PAUSED and self.manager is not None:
            self.manager.resume(job.id)

    def take(self, batch: Batch, job: Job) -> None:
        batch.jobs.add(job.id)
        if not job.state.terminal:
            batch.unsettled.add(job.id)
        self.job_batch[job.id] = batch

    # -- batches ----------------------------------------------------------------------------

    def batch_totals(self, batch: Batch) -> TotalProgress:
        """The batch's own totals, as the engine's are for all (O(jobs of the batch))."""
        m = self.manager
        assert m is not None
        total = done = files_done = 0
        rate = 0.0
        for job_id in batch.jobs:
            job = m.jobs.get(job_id)
            if job is None:  # not in the engine's memory: as its last event left it
                state, size = batch.known.get(job_id, (JobState.CANCELLED, 0))
                sent = size if state == JobState.DONE else 0
            else:
                state, size, sent = job.state, job.size, job.sent
            if state == JobState.CANCELLED:
                continue
            total += size
            if state == JobState.DONE:
                done += size
                files_done += 1
            else:
                done += sent
            if job is not None and state.active:
                rate += job.meter.rate()
        eta = (total - done) / rate if rate > 0 else None
        return TotalProgress(done, total, files_done, len(batch.jobs), rate, eta, eta, eta)

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
        held = m.draining or m.stopped is not None
        for job_id in batch.unsettled:
            job = m.jobs.get(job_id)
            if job is None:  # a journal row: queued there, or settled
                state = batch.known.get(job_id, (JobState.DONE, 0))[0]
                if state == JobState.QUEUED and not held:
                    return False
                continue
            if job.task is not None and not job.task.done():
                return False
            waiting = job.state == JobState.QUEUED and (held or m.driven_elsewhere(job_id))
            if not waiting:
                return False
        return True

    def left(self, batch: Batch) -> int:
        m = self.manager
        if m is None:
            return 0
        return sum(
            1
            for j in batch.jobs
            if not (
                job.state if (job := m.jobs.get(j)) else batch.known.get(j, (JobState.DONE, 0))[0]
            ).terminal
        )

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
