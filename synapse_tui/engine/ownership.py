"""Which process drives a job: absolute paths, claiming a queued job, jobs left elsewhere."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from synapse_tui.engine.events import JobElsewhere, JobState, JobStateChanged
from synapse_tui.engine.hashing import Identity
from synapse_tui.engine.journal import JobRecord, Journal
from synapse_tui.engine.names import absolute
from synapse_tui.engine.steps import JobSteps

if TYPE_CHECKING:
    from synapse_tui.engine.job import Job
    from synapse_tui.engine.scheduler import UploadManager

# Several processes may share one journal (two `upload`s, a dashboard and a `resume`). A
# job's lock says who drives it now; its journal row says what happened to it. A process
# re-reads the row under the lock before it starts a job (`claim`), so a job another
# process has finished meanwhile is never uploaded again.

# The row of a job we hold queued says another process has taken it on: finished it, or
# moved it on to registering (its data unit step runs there).
_TAKEN = (
    JobState.DONE,
    JobState.SKIPPED,
    JobState.FAILED,
    JobState.CANCELLED,
    JobState.REGISTERING,
)
DRIVEN_ELSEWHERE = "another synapse-tui drives it"


def adopt_relative(journal: Journal) -> list[JobRecord]:
    """Make the relative paths of unfinished jobs (older journals) absolute where this
    folder holds that very file (same inode, device, size and mtime); returns the jobs
    still relative, which only a run in their own folder can resume."""
    left: list[JobRecord] = []
    for rec in journal.relative_unfinished():
        candidate = absolute(rec.path)
        try:
            found = Identity.of(os.stat(candidate))
        except OSError:
            found = None
        if found == rec.identity:
            journal.set_path(rec.id, candidate)
        else:
            left.append(rec)
    return left


def claim(m: UploadManager, job: Job) -> bool:
    """Under the job's lock, before it starts: whether this process should drive it.

    The row is read again: another process may have driven the job since this one queued
    it. Finished there: the job takes the row's state and is reported as done elsewhere.
    Stopped or crashed there (paused, or an active state with no lock held): it goes on
    here from the row's upload and offset, so nothing is sent twice.
    """
    try:
        # Read without waiting for the writer: the dispatcher awaited `durable`, and the
        # only write of this job nothing waits for (its finished note) is not pending
        # while it is queued.
        rec = m.journal.get(job.id, wait=False)
    except KeyError:  # pruned by another process: it was finished there
        rec = None
    if rec is None or rec.state in _TAKEN:
        state = rec.state if rec is not None else JobState.SKIPPED
        if state == JobState.REGISTERING:
            elsewhere(m, job, "another synapse-tui registers it")
            return False
        m.transition(job, state)  # the row says it already: counted, not written
        if rec is not None:
            job.upload_id, job.md5, job.last_error = rec.upload_id, rec.md5, rec.last_error
            job.steps = rec.steps
        if state == JobState.DONE:
            job.offset = job.sent = job.size
        m.emit(JobStateChanged(job.id, state, "another synapse-tui process took it on"))
        verb = {JobState.DONE: "uploaded", JobState.FAILED: "failed"}.get(state, state.value)
        m.emit(JobElsewhere(job.id, job.display, f"another synapse-tui {verb} it"))
        return False
    if (rec.upload_id, rec.upload_url, rec.offset) != (job.upload_id, job.upload_url, job.offset):
        job.upload_id, job.upload_url = rec.upload_id, rec.upload_url
        job.offset = job.sent = rec.offset
        job.resumed_from = rec.resumed_from or 0
        job.hashes = job.chunk_hashes = None  # re-hashed at the row's offset
    if not job.creating_noted:
        job.creating_since = rec.creating_since  # a POST another process may have sent
    if rec.steps != JobSteps():
        job.steps = rec.steps
    return True


def elsewhere(m: UploadManager, job: Job, reason: str = DRIVEN_ELSEWHERE) -> None:
    """This process leaves `job` to the process that holds its lock."""
    m.queue.elsewhere.add(job.id)  # never dispatched here, its row never written
    m.emit(JobElsewhere(job.id, job.display, reason))
