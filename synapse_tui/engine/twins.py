"""Twins: a file whose content another file of the run has takes that file's data file."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from synapse_tui.engine.contexts import RegistrarContext
from synapse_tui.engine.events import Event, JobState, JobStateChanged
from synapse_tui.engine.job import Job, job_from_record
from synapse_tui.engine.steps import Id
from synapse_tui.engine.uploader import Paused

# Originals with a data file, remembered by content: a run of many equal files (the same
# label a thousand times) finds its data file without an index walk per twin. Bounded.
KNOWN_MAX = 4096


@dataclass(frozen=True)
class Known:
    """What a twin takes from an original that has its data file."""

    display: str
    upload_id: str | None
    md5: str | None
    data_file_id: Id
    checksum: str


class Twins:
    """Finds a twin's original (in memory, else by the journal's fingerprint index among
    this manager's rows) and wakes the twins waiting for it."""

    def __init__(self, ctx: RegistrarContext) -> None:
        self.m = ctx
        self._waiting: dict[int, list[asyncio.Future[None]]] = {}  # original job id -> twins
        self._known: OrderedDict[tuple[str, int], Known] = OrderedDict()
        ctx.subscribe(self._on_event)

    def _on_event(self, event: Event) -> None:
        if isinstance(event, JobStateChanged) and event.job_id in self._waiting:
            self.wake(event.job_id)

    def wake(self, job_id: int) -> None:
        for future in self._waiting.pop(job_id, []):
            if not future.done():
                future.set_result(None)

    def remember(self, job: Job) -> None:
        """`job` has its data file now: its twins may take it."""
        steps = job.steps
        if steps.data_file_id and steps.checksum and not steps.twin:
            key = (job.fingerprint, job.size)
            self._known[key] = Known(
                job.display, job.upload_id, job.md5, steps.data_file_id, steps.checksum
            )
            self._known.move_to_end(key)
            while len(self._known) > KNOWN_MAX:
                self._known.popitem(last=False)

    async def original(self, job: Job) -> Job | None:
        """The job of this run that uploads the twin's content (one with a data file first,
        then one unfinished, then the oldest): the one in memory where it is held, else a
        copy read from its row (this manager's rows only: the run's files)."""
        await self.m.journal.settled()  # the rows as this process wrote them
        held = self.m.jobs
        found: list[Job] = []
        for rec in self.m.session.same_content(job.fingerprint, job.size, job.id):
            other = held.get(rec.id)
            if other is None:
                other = job_from_record(rec)
            if not other.steps.twin:
                found.append(other)
        found.sort(key=lambda j: (not j.steps.data_file_id, j.state.terminal, j.id))
        return found[0] if found else None

    def _take(self, job: Job, known: Known) -> None:
        steps = job.steps
        job.upload_id, job.md5 = known.upload_id, known.md5
        steps.uploaded = True
        steps.data_file_id, steps.checksum = known.data_file_id, known.checksum
        self.m.journal.update(job.id, upload_id=job.upload_id, md5=job.md5, extra=steps)
        self.m.log("info", f"{job.display}: same content as {known.display}", job.id)

    async def borrow(self, job: Job) -> bool:
        """For a twin: wait for its original's data file and take it (True), or say it must
        upload its own bytes (False: the original failed, paused or is not in this run)."""
        steps = job.steps
        if not steps.twin:
            return False
        while True:
            known = self._known.get((job.fingerprint, job.size))
            if known is not None:
                self._take(job, known)
                return True
            original = await self.original(job)
            if original is None:  # not in this run (a resume): uploaded by an earlier one?
                entry = self.m.journal.uploaded(self.m.options.host, job.fingerprint, job.size)
                if entry is None:
                    return False
                job.upload_id, job.md5 = entry.upload_id, entry.md5
                steps.uploaded = True  # its data file is asked for next
                known_file = self.m.journal.data_file_of(
                    self.m.options.host, job.fingerprint, job.size
                )
                if known_file is not None:  # a presigned upload's: its key is no chunked upload
                    steps.data_file_id, steps.checksum = known_file
                self.m.journal.update(job.id, upload_id=job.upload_id, md5=job.md5, extra=steps)
                return True
            if original.steps.data_file_id and original.steps.checksum:
                self.remember(original)
                o = original.steps
                assert o.data_file_id is not None and o.checksum is not None
                known = Known(original.display, original.upload_id, original.md5,
                              o.data_file_id, o.checksum)  # fmt: skip
                self._take(job, known)
                return True
            # Only a job held in memory runs: a row read from the journal never does.
            running = original.task is not None and not original.task.done()
            if original.state.terminal or original.state == JobState.PAUSED or not running:
                return False
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiting.setdefault(original.id, []).append(future)
            woken = asyncio.ensure_future(job.wake.wait())
            try:
                either: set[asyncio.Future[Any]] = {future, woken}
                await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
            finally:
                woken.cancel()
            if job.pause_requested:
                raise Paused()
            job.wake.clear()
