"""What a user does to a manager's jobs: pause, resume, cancel, retry, reprioritise."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from synapse_tui.engine.events import JobState
from synapse_tui.engine.job import Job

if TYPE_CHECKING:
    from synapse_tui.engine.scheduler import UploadManager


class Controls:
    """The control verbs on one job or on every job of the manager `m`, each journaled; a
    bulk verb over the queue's rows commits once."""

    def __init__(self, m: UploadManager) -> None:
        self.m = m

    def pause(self, job_id: int) -> None:
        m = self.m
        job = m.get(job_id)
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

    def resume(self, job_id: int) -> None:
        m = self.m
        job = m.get(job_id)
        if job is None:
            return
        job.pause_requested = False
        if job.state == JobState.PAUSED and (job.task is None or job.task.done()):
            job.reset_retries()
            m.set_state(job, JobState.QUEUED)
        m.kick()

    def pause_all(self) -> None:
        m = self.m
        for job_id in list(m.jobs):
            self.pause(job_id)
        for job in m.views.each(JobState.QUEUED):
            if job.id in m.jobs:
                self.pause(job.id)
            elif job.id not in m.queue.elsewhere:
                m.set_state(job, JobState.PAUSED, "paused")

    def resume_all(self) -> None:
        m = self.m
        m.draining = False
        for job_id in list(m.jobs):
            self.resume(job_id)
        for job in m.views.each(JobState.PAUSED):
            if job.id not in m.jobs:
                job.reset_retries()
                m.set_state(job, JobState.QUEUED)
                m.journal.update(job.id, attempts=0)
        m.kick()

    def cancel(self, job_id: int) -> None:
        m = self.m
        job = m.get(job_id)
        if job is None or job.state.terminal:
            return
        job.cancel_requested = True
        if job.task is not None and not job.task.done():
            job.task.cancel()
        else:
            m.set_state(job, JobState.CANCELLED, "cancelled")
        m.kick()

    def retry_failed(self) -> int:
        """Queue the failed jobs again, and cut short the backoff of the ones retrying."""
        m = self.m
        count = 0
        for job in m.runner.running:
            job.wake.set()  # a job in `_sleep` retries now; one not sleeping ignores it
        for job in m.views.each(JobState.FAILED):
            job.reset_retries()
            job.restarts = 0
            job.cancel_requested = job.pause_requested = False
            m.set_state(job, JobState.QUEUED)
            m.journal.update(job.id, attempts=0)  # read back with its page
            count += 1
        m.kick()
        return count

    def set_priority(self, job_id: int, priority: int) -> None:
        m = self.m
        job = m.get(job_id)
        if job is not None:
            job.priority = priority
            m.journal.update(job_id, priority=priority)
            if job.state == JobState.QUEUED:
                m.queue.offer(job)
            m.kick()
