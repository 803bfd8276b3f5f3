"""Running a manager's jobs: dispatch under the concurrency gate, outcomes, fatal stops, idle."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from typing import TYPE_CHECKING

from synapse_tui.engine import ownership
from synapse_tui.engine.errors import FatalError, FileError, SynapseError
from synapse_tui.engine.events import FatalStop, JobFailed, JobState
from synapse_tui.engine.job import Job, fits_whole
from synapse_tui.engine.meter import Meter
from synapse_tui.engine.uploader import Paused, RetriesExhausted

if TYPE_CHECKING:
    from synapse_tui.engine.scheduler import UploadManager

log = logging.getLogger("synapse_tui.engine")


class Runner:
    """Starts the manager `m`'s queued jobs as slots free up, turns each job's outcome into
    its state, stops everything on a fatal error, and knows when nothing is left to do."""

    def __init__(self, m: UploadManager) -> None:
        self.m = m
        self.running: set[Job] = set()  # jobs with a task; active() filters the done
        self.wake = asyncio.Event()
        self.idle = asyncio.Event()
        self.units_task: asyncio.Task[None] | None = None

    def kick(self) -> None:
        """Something changed: the dispatcher looks again, idleness is asked again."""
        self.wake.set()
        self.update_idle()

    def busy(self) -> None:
        self.idle.clear()

    def active(self) -> list[Job]:
        # Only jobs given a task can be active: no pass over every job (O(n) per event,
        # O(n^2) over a batch of many small files).
        return [j for j in self.running if j.task is not None and not j.task.done()]

    def _not_running(self, job: Job, _task: object) -> None:
        self.running.discard(job)

    async def dispatch_loop(self) -> None:
        m = self.m
        while True:
            self.wake.clear()
            # The rows read next as this process wrote them, awaited (the loop goes on): a
            # page of the queue needs every write (a job finished here must not read as
            # queued); a job's own row (ownership.claim) needs what `durable` waits for.
            try:
                if m.queue.refill_due() and not m.journal.caught_up():
                    await m.journal.settled()
                await m.journal.durable()
            except FatalError as exc:  # a journal write failed: stop, one line
                self.fatal(exc)
            if not m.draining and m.stopped is None and not m.controls.pausing:
                while m.gate.free() and (job := m.queue.pop_runnable()) is not None:
                    weight = 1 if fits_whole(job) else m.options.small_boost
                    if not m.gate.free(weight):  # a large file waits for a whole slot
                        m.queue.push_ready(job)
                        break
                    if not m.journal.try_lock(job.id):
                        ownership.elsewhere(m, job)
                        continue
                    if not ownership.claim(m, job):  # another process finished it
                        m.journal.unlock(job.id)
                        m.queue.maybe_release(job)
                        continue
                    m.gate.take(weight)
                    job.slot = weight
                    job.task = asyncio.create_task(self._run(job), name=f"job-{job.id}")
                    self.running.add(job)
                    job.task.add_done_callback(functools.partial(self._not_running, job))
            self._maybe_register_units()
            self.update_idle()
            await self.wake.wait()

    async def _run(self, job: Job) -> None:
        m = self.m
        job.pause_requested = job.cancel_requested = job.pause_cut = False
        job.meter = Meter()
        try:
            if not job.steps.uploaded and not await m.registrar.borrow(job):
                from synapse_tui.engine.presigned import run_upload  # chooses the path per job

                await run_upload(m, job)
            if job.steps.uploaded and not job.steps.data_file_id:
                m.set_state(job, JobState.REGISTERING, "registering the data file")
                await m.registrar.data_file(job)
            if job.steps.uploaded and job.state != JobState.REGISTERING:
                m.set_state(job, JobState.REGISTERING)
        except Paused:
            m.set_state(job, JobState.PAUSED, "paused")
        except RetriesExhausted as exc:
            m.set_state(job, JobState.PAUSED, f"{exc} (resumable)")
            m.emit(JobFailed(job.id, job.display, str(exc), resumable=True))
        except asyncio.CancelledError:
            if job.cancel_requested:
                m.set_state(job, JobState.CANCELLED, "cancelled")
            elif job.pause_cut:
                m.set_state(job, JobState.PAUSED, "paused")
            elif m.stopped is not None:  # a fatal stop: leave no job "uploading"
                m.set_state(job, JobState.PAUSED, f"stopped: {m.stopped}")
            else:
                raise
        except FatalError as exc:
            m.set_state(job, JobState.PAUSED, f"stopped: {exc}")
            self.fatal(exc)
        except FileError as exc:
            self.fail(job, str(exc))
        except SynapseError as exc:
            self.fail(job, str(exc))
        except Exception as exc:
            log.exception("internal error on job %s", job.id)
            self.fail(job, f"internal error: {type(exc).__name__}: {exc}")
        finally:
            job.sent = job.offset if job.state != JobState.DONE else job.size
            m.journal.unlock(job.id)
            await m.gate.release(job.slot)
            m.views.dirty.add(job.id)
            if job.state == JobState.REGISTERING:  # it waits for its data unit now
                m.registrar.due = True
            self.kick()
            # once its task ends
            asyncio.get_running_loop().call_soon(m.queue.maybe_release, job)

    def fail(self, job: Job, message: str) -> None:
        m = self.m
        m.journal.add_error(job.id, message)
        m.set_state(job, JobState.FAILED, message)
        m.emit(JobFailed(job.id, job.display, message))

    def fatal(self, exc: FatalError) -> None:
        m = self.m
        if m.stopped is not None:
            return
        m.stopped = str(exc)
        for other in list(m.jobs.values()):
            if other.task is not None and not other.task.done():
                other.pause_requested = True
                other.task.cancel()
            elif other.id in m.queue.elsewhere:
                continue  # another process drives it: its row is not ours to write
            elif other.state == JobState.QUEUED or other.state.active:
                # active without a task: registered, waiting for its data unit step
                m.set_state(other, JobState.PAUSED, f"stopped: {exc}")
        # The queued rows, and those waiting for their data unit, as a bulk verb pauses them.
        m.controls.stop_rows(f"stopped: {exc}", (JobState.QUEUED, JobState.REGISTERING))
        m.emit(FatalStop(str(exc)))
        self.kick()

    def _maybe_register_units(self) -> None:
        """Once nothing uploads or scans, create the data units of registered files."""
        m = self.m
        if self.units_task is not None and not self.units_task.done():
            return
        if m.intake.scans or self.active() or m.stopped is not None:
            return
        if m.queue.queued_here() and not m.draining:
            return
        if self.registering():
            self.units_task = asyncio.create_task(self._register_units(), name="units")

    def registering(self) -> bool:
        """Jobs wait for their data unit step: one became so since the step last read them
        (`Registrar.due`) and the counter has some. O(1): asked on every kick (per file
        queued or resumed while drained), and the jobs waiting are rows, not in memory."""
        m = self.m
        return m.registrar.due and bool(m.counters.count[JobState.REGISTERING])

    async def _register_units(self) -> None:
        m = self.m
        try:
            await m.registrar.units()
        except FatalError as exc:
            self.fatal(exc)
        except SynapseError as exc:
            await m.registrar.fail_waiting(f"data unit: {exc}")
        except Exception as exc:
            # A bug, as a job's own: said, and its jobs failed (a retry registers them), not
            # left registering with no step to come (an engine's batch would wait for ever).
            log.exception("internal error in the data units step")
            await m.registrar.fail_waiting(f"data unit: internal error: {type(exc).__name__}")
        finally:
            self.kick()

    async def end_units(self) -> None:
        """End a running data units step (the manager closes): nothing of it runs on, or
        writes, after close. A request it sent may have made units whose answer is lost:
        its jobs keep `unit_requested`, so the next run looks for those before sending."""
        task = self.units_task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def update_idle(self) -> None:
        m = self.m
        units = self.units_task is not None and not self.units_task.done()
        busy = units or m.intake.scans > 0 or bool(self.active()) or m.controls.waiting()
        if not busy and not m.draining and m.stopped is None:
            busy = m.queue.queued_here() > 0
        if not busy and self.registering() and m.stopped is None:
            busy = True  # the units step is about to start
        if busy:
            self.idle.clear()
        else:
            self.idle.set()

    async def wait_idle(self) -> None:
        """Until nothing runs and nothing will start (queue empty, drained or stopped)."""
        while True:
            self.update_idle()
            await self.idle.wait()
            await asyncio.sleep(0)  # let cancelled tasks settle
            self.update_idle()
            if self.idle.is_set():
                return
