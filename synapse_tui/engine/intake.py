"""Adding work to a manager: scanned paths and unfinished journal rows become its jobs."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from synapse_tui.engine import ownership, presigned_journal
from synapse_tui.engine.collections import CollectionPlan
from synapse_tui.engine.errors import FileError
from synapse_tui.engine.events import (
    JobFailed,
    JobQueued,
    JobSkipped,
    JobState,
    JobStateChanged,
    ScanProgress,
)
from synapse_tui.engine.filters import PathFilter
from synapse_tui.engine.job import Job, job_from_record
from synapse_tui.engine.journal import Added, JobRecord, NewJob
from synapse_tui.engine.names import absolute, display_path
from synapse_tui.engine.pacing import ScanPacer
from synapse_tui.engine.scan import FoundFile, Refused, scan
from synapse_tui.engine.session import SeenKey
from synapse_tui.engine.steps import JobSteps

if TYPE_CHECKING:
    from synapse_tui.engine.scheduler import UploadManager

RELATIVE_NOT_HERE = (
    "journaled with a relative path by an older synapse-tui, and not found from this"
    " folder: run `synapse-tui resume` in the folder the upload started in"
)


Key = tuple[bytes, str]  # a file's path and fingerprint


@dataclass
class Revival:
    """A cancelled job held in memory, its file queued again: its row is made queued in the
    batch's write (`Journal.revive`) before the job is."""

    job: Job
    item: FoundFile
    steps: JobSteps | None


@dataclass
class ScanTotals:
    files: int = 0
    bytes: int = 0
    duplicates: int = 0
    already_uploaded: int = 0
    skipped: int = 0
    failed: int = 0
    seconds: float = 0.0


class Intake:
    """Turns scanned files and unfinished journal rows into jobs of the manager `m`."""

    def __init__(self, m: UploadManager) -> None:
        self.m = m
        self.totals = ScanTotals()  # over every scan of this manager
        self.scans = 0  # scans running
        # Cancelled jobs with an upload on the server, by (path, fingerprint): queueing the
        # same file again resumes that upload instead of orphaning it.
        self.cancelled: dict[tuple[bytes, str], Job] = {}
        self.pacer = ScanPacer(m)

    def enqueue(
        self, rec: JobRecord, resumed: bool, keep: Callable[[JobRecord], bool] | None = None
    ) -> None:
        """Make the journal row `rec` a job of this manager: counted, and held in memory
        only if the look-ahead has room for it (else it waits as a row). A resumed row
        that `keep` names is paused instead (a row: never held, never dispatched)."""
        m = self.m
        if not m.session.add(rec.id):
            return  # already one of ours
        m.counters.enter(rec.state, rec.size, rec.offset)
        # A job this process just created is queued and known to no other process (its row
        # is not even committed yet): only a job from the journal may be driven elsewhere.
        if resumed and not m.journal.try_lock(rec.id):
            # Another process drives it: its journal row (state, offset) is not ours to write.
            job = job_from_record(rec)
            m.transition(job, JobState.QUEUED)
            m.queue.hold(job)  # held, never dispatched: see Lookahead.elsewhere
            ownership.elsewhere(m, job)
        elif resumed:
            m.journal.unlock(rec.id)
            if keep is not None and keep(rec):  # announced, then paused: a row, not held
                m.emit(JobQueued(rec.id, display_path(rec.path), rec.size, resumed))
                if rec.state == JobState.PAUSED:
                    m.emit(JobStateChanged(rec.id, rec.state, rec.last_error or "paused"))
                else:
                    m.set_state(job_from_record(rec), JobState.PAUSED, "paused")
                return
            if rec.state != JobState.QUEUED:
                m.set_state(job_from_record(rec), JobState.QUEUED)
            elif m.queue.room_for(rec.priority):
                m.queue.hold(job_from_record(rec))
        elif m.queue.room_for(rec.priority):
            m.queue.hold(job_from_record(rec))
        m.emit(JobQueued(rec.id, display_path(rec.path), rec.size, resumed))
        m.kick()

    def resume_unfinished(self, keep_paused: Callable[[JobRecord], bool] | None = None) -> int:
        """Queue every unfinished job of this host from the journal (paused ones too);
        those `keep_paused` names (the user's pauses) are taken back paused instead."""
        m = self.m
        count = 0
        # An older journal's relative paths: made absolute where this folder holds the file.
        relative = {r.id for r in ownership.adopt_relative(m.journal)}
        # Every write before this is read (its caller awaited `settled`, or none was made);
        # the pages after the first are read as committed: what this queues meanwhile
        # only changes rows read before (and `session.has` skips them).
        m.journal.catch_up()
        for rec in m.journal.unfinished_pages(m.options.host, wait=False):
            if m.session.has(rec.id):
                continue
            if rec.id in relative:  # left as it is, resumable from its own folder
                m.emit(JobFailed(None, display_path(rec.path), RELATIVE_NOT_HERE, resumable=True))
                continue
            self.enqueue(rec, resumed=True, keep=keep_paused)
            count += 1
        return count

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
        m = self.m
        totals = ScanTotals()
        self.scans += 1
        m.runner.busy()
        # Duplicates within this scan: an index in the journal's TEMP tables, read and
        # written once per batch (a dict of every file met would grow with the folder).
        scan_id = m.session.new_scan()
        started = time.monotonic()
        last_emit = 0.0
        try:
            ownership.adopt_relative(m.journal)  # so an older job of these files is found
            roots = [absolute(os.fsencode(p)) for p in paths]
            await m.journal.settled()  # never a wait for the writer on this loop
            presigned_cancelled = presigned_journal.any_cancelled(m.journal)
            async for batch in scan(roots, path_filter=path_filter):
                started_batch = self.pacer.clock()
                await m.journal.settled()  # its reads see every write of this process
                adds: dict[Key, NewJob] = {}  # the batch's new jobs: one write
                revivals: dict[Key, Revival] = {}  # its cancelled jobs again: one write
                found = [i for i in batch if not isinstance(i, Refused)]
                prints = [i.fingerprint for i in found]
                known = m.journal.known_fingerprints(m.options.host, prints)
                if presigned_cancelled:  # their grants make them worth a lookup too
                    known |= presigned_journal.cancelled_fingerprints(
                        m.journal, m.options.host, prints
                    )
                keys = [(i.identity.size, i.fingerprint) for i in found]
                seen = m.session.seen(scan_id, keys) if not force else {}
                before = set(seen)
                for item in batch:
                    if isinstance(item, Refused):
                        self._refused(item, totals)
                        continue
                    if not m.journal.caught_up():
                        # Only this batch wrote since `settled` (a cancelled job's new plan):
                        # the next lookup would wait for that write on the loop.
                        await m.journal.settled()
                    totals.files += 1
                    totals.bytes += item.identity.size
                    self.accept(item, totals, seen, force, priority, plan, known, adds, revivals)
                m.session.note_seen(scan_id, {k: seen[k] for k in seen if k not in before})
                await self._revive(revivals, priority, adds, force)
                for added in await m.journal.add_jobs(list(adds.values())):
                    self._added(added, totals)
                now = time.monotonic()
                if now - last_emit >= m.options.tick:
                    last_emit = now
                    self._emit_scan(totals)
                # Uploads first, when enough waits for them. The batch's whole time counts,
                # its writes too: the writer thread's inserts take the GIL from the loop.
                await self.pacer.after(self.pacer.clock() - started_batch)
        finally:
            totals.seconds = time.monotonic() - started
            m.session.end_scan(scan_id)
            self.scans -= 1
            self._merge_scan(totals)
            self._emit_scan(totals, done=True)
            m.kick()
        return totals

    def _added(self, added: Added, totals: ScanTotals) -> None:
        """A new job queued; or what another process's scan, racing this one, made of the
        file meanwhile: its unfinished job (taken as one from the journal: locked, or left
        to that process) or its finished upload."""
        m = self.m
        if added.uploaded is not None:
            totals.already_uploaded += 1
            reason = f"already uploaded (upload {added.uploaded})"
            m.emit(JobSkipped(None, display_path(added.spec.path), reason))
            return
        assert added.record is not None
        if not added.existing:
            self.enqueue(added.record, resumed=False)
        elif not m.session.has(added.record.id):
            self.enqueue(added.record, resumed=True)

    def _refused(self, item: Refused, totals: ScanTotals) -> None:
        if item.error:
            totals.failed += 1
            self.m.emit(JobFailed(None, item.display, item.reason))
        else:
            totals.skipped += 1
            self.m.emit(JobSkipped(None, item.display, item.reason))

    def accept(
        self,
        item: FoundFile,
        totals: ScanTotals,
        seen: dict[SeenKey, str],
        force: bool,
        priority: int,
        plan: CollectionPlan | None,
        known: set[str] | None,
        adds: dict[Key, NewJob],
        revivals: dict[Key, Revival],
    ) -> None:
        """Queue `item` unless it is a duplicate, already uploaded, or already a job.
        `known`: the fingerprints of this batch that the ledger or an unfinished job has
        (`Journal.known_fingerprints`); any other needs no lookup. `adds`: the batch's new
        jobs, added (and queued) in one write when the batch ends; `revivals`: its
        cancelled jobs held in memory, queued again in one write before that."""
        m = self.m
        key = (item.identity.size, item.fingerprint)
        host = m.options.host
        lookup = known is None or item.fingerprint in known
        steps: JobSteps | None = None  # with a plan: the job's collection workflow
        if plan is not None:
            try:
                steps = plan.job_steps(item.path)
            except FileError as exc:  # fails before anything is uploaded
                totals.failed += 1
                m.emit(JobFailed(None, item.display, str(exc)))
                return
        if not force:
            if key in seen and steps is None:
                totals.duplicates += 1
                m.emit(JobSkipped(None, item.display, f"duplicate of {seen[key]}"))
                return
            if key in seen and steps is not None:  # its unit needs it: see Registrar.borrow
                steps.twin = True
            seen.setdefault(key, item.display)
            entry = (
                m.journal.uploaded(host, item.fingerprint, item.identity.size) if lookup else None
            )
            if entry is not None and plan is not None and steps is not None:
                unit = m.journal.registered(host, item.fingerprint, plan.collection.id)
                if unit is None:  # uploaded before, not yet in this collection: register it
                    steps.uploaded = True
                    known_file = m.journal.data_file_of(host, item.fingerprint, entry.size)
                    if known_file is not None:  # e.g. a presigned upload's: no chunked upload
                        steps.data_file_id, steps.checksum = known_file
                    adds[(item.path, item.fingerprint)] = self._new_job(
                        item, priority, steps, entry.upload_id, entry.md5
                    )
                    return
                totals.already_uploaded += 1
                m.emit(JobSkipped(None, item.display, f"already in collection (data unit {unit})"))
                return
            if entry is not None:
                totals.already_uploaded += 1
                m.emit(
                    JobSkipped(None, item.display, f"already uploaded (upload {entry.upload_id})")
                )
                return
        # Taken out once revived (`_revive`): till then another scan's batch finds it here,
        # not a cancelled row to make a second job of.
        cancelled = self.cancelled.get((item.path, item.fingerprint))
        if cancelled is not None and cancelled.state == JobState.CANCELLED:
            if steps is not None:
                self._replan(cancelled, steps)
            revivals[(item.path, item.fingerprint)] = Revival(cancelled, item, steps)
            return
        if (item.path, item.fingerprint) in adds or (item.path, item.fingerprint) in revivals:
            return  # twice in one batch (--force): one job
        existing = m.journal.find_unfinished(item.path, item.fingerprint, host) if lookup else None
        if existing is None and lookup:  # cancelled in an earlier session: resume its upload
            existing = self._revive_row(item, steps)
        if existing is not None:
            if not m.session.has(existing.id):
                self.enqueue(existing, resumed=True)
            elif m.on_held is not None:  # the engine service: the adding batch follows it
                m.on_held(m.jobs.get(existing.id) or job_from_record(existing))
            return
        adds[(item.path, item.fingerprint)] = self._new_job(item, priority, steps, force=force)
        if known is not None:
            known.add(item.fingerprint)  # now a job: the same content again is looked up

    def _revive_row(self, item: FoundFile, steps: JobSteps | None) -> JobRecord | None:
        """The journal's cancelled job of this file with an upload (cancelled in an earlier
        session), made queueable again: `_prepare` asks the server for that upload and goes
        on from its offset, or starts a new one (one warning) when the server lost it."""
        m = self.m
        rec = m.journal.find_cancelled(item.path, item.fingerprint, m.options.host)
        if rec is None:  # a presigned upload keeps no upload URL: its grant says it
            rec = presigned_journal.find_cancelled(
                m.journal, item.path, item.fingerprint, m.options.host
            )
        if rec is None or m.session.has(rec.id):
            return None
        if steps is not None:
            job = job_from_record(rec)
            self._replan(job, steps)
            rec.steps = job.steps
        m.journal.update(rec.id, attempts=0)
        rec.attempts = 0
        m.log("info", f"{display_path(rec.path)}: queued again, resuming its cancelled upload")
        return rec

    def _replan(self, job: Job, new: JobSteps) -> None:
        """A cancelled job queued again with a collection plan takes it (it kept the old
        one, so the plan given now was lost). What the upload itself left (its data file)
        is kept; a unit asked for in the same collection keeps the old plan whole."""
        old = job.steps
        unit_asked = old.unit_id is not None or old.unit_requested
        if unit_asked and old.collection == new.collection:
            return  # its unit may exist already: never a second one
        job.steps = old.replanned(new)
        self.m.journal.update(job.id, extra=job.steps)

    async def _revive(
        self, revivals: dict[Key, Revival], priority: int, adds: dict[Key, NewJob], force: bool
    ) -> None:
        """Queue a batch's cancelled jobs again: each upload resumes where the server holds
        it. A job whose row `status --prune` removed meanwhile (another process's too,
        committed up to the write itself) would upload unseen by `status` and never resume:
        it becomes a new job with its own row."""
        if not revivals:
            return
        m = self.m
        for key, r in list(revivals.items()):
            if r.job.state != JobState.CANCELLED:  # another scan's batch queued it meanwhile
                del revivals[key]  # its row is that job's now: never written back to queued
                if m.on_held is not None:  # the engine service: this batch follows it too
                    m.on_held(r.job)
            elif self.cancelled.get(key) is r.job:  # another batch now finds its row queued
                self.cancelled.pop(key)
        kept = await m.journal.revive([r.job.id for r in revivals.values()])
        for key, r in revivals.items():
            job = r.job
            if job.id not in kept:
                m.log("info", f"{job.display}: its cancelled upload was pruned; uploading it anew")
                adds[key] = self._new_job(r.item, priority, r.steps, force=force)
                continue
            if job.state != JobState.CANCELLED:  # taken back meanwhile (its row is queued)
                continue
            job.cancel_requested = job.pause_requested = False
            job.reset_retries()
            m.log("info", f"{job.display}: queued again, resuming its cancelled upload", job.id)
            m.set_state(job, JobState.QUEUED, persist=False)  # the write above made it so
            m.emit(JobQueued(job.id, job.display, job.size, resumed=True))
        m.kick()

    def _new_job(
        self,
        item: FoundFile,
        priority: int,
        steps: JobSteps | None,
        upload_id: str | None = None,
        md5: str | None = None,
        *,
        force: bool = False,
    ) -> NewJob:
        o = self.m.options
        return NewJob(
            item.path,
            item.identity,
            item.fingerprint,
            o.host,
            o.chunk_size,
            priority,
            steps,
            upload_id,
            md5,
            force=force,
        )

    def _merge_scan(self, totals: ScanTotals) -> None:
        t = self.totals
        for name in ScanTotals.__dataclass_fields__:
            setattr(t, name, getattr(t, name) + getattr(totals, name))

    def _emit_scan(self, totals: ScanTotals, done: bool = False) -> None:
        self.m.emit(
            ScanProgress(
                totals.files,
                totals.bytes,
                totals.duplicates,
                totals.already_uploaded,
                totals.skipped,
                done=done and self.scans == 0,
                failed=totals.failed,
            )
        )
