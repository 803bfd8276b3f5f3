"""Registering uploads in a data collection: data files, then data units, each step once.

Every step is journaled before and after its request. A rerun after a crash between steps
finishes only what is missing: a data unit whose creation was sent but not recorded is
looked up on the server (by its files' checksums and stem) before it is ever sent again.

A file whose content another file of the same run has (a "twin") is not uploaded again: it
waits for that file's data file and names the same checksum in its own unit. If that file
fails, is paused or cancelled, the twin uploads its own bytes: it is never left out.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from synapse_tui.engine.catalog import Collection, fetch_collection, list_collections
from synapse_tui.engine.contexts import RegistrarContext
from synapse_tui.engine.errors import (
    ConfigError,
    FileError,
    OutcomeUnknown,
    ProtocolError,
    TransientError,
)
from synapse_tui.engine.events import JobState, UnitRegistered
from synapse_tui.engine.job import Job
from synapse_tui.engine.names import display_name, escape_text
from synapse_tui.engine.protocol import ProtocolClient
from synapse_tui.engine.steps import JobSteps, UnitPlan, as_id
from synapse_tui.engine.twins import Twins
from synapse_tui.engine.unit_forms import parse_meta, parse_spec_map, same_unit, unit_body
from synapse_tui.engine.unit_wait import UnitWait

__all__ = [
    "Collection",
    "CollectionPlan",
    "Registrar",
    "fetch_collection",
    "list_collections",
    "parse_meta",
    "parse_spec_map",
]

UNITS_PER_REQUEST = 100
LIST_PAGE_SIZE = 1000  # units per page when looking for lost ones
LIST_PAGES_MAX = 10_000  # a bound on that walk, whatever the server answers
PAGE = 500  # rows of the journal read at a time when collecting the jobs waiting for units


@dataclass
class CollectionPlan:
    """How files map to spec names and data units."""

    collection: Collection
    spec: str | None = None
    group_by_stem: bool = False
    spec_map: dict[str, str] = field(default_factory=dict)  # extension (no dot) -> spec
    meta: dict[str, str] = field(default_factory=dict)

    def validate(self) -> None:
        specs = set(self.collection.specs)
        if self.spec is not None and self.spec not in specs:
            raise ConfigError(
                f"collection {self.collection.id} has no spec {self.spec!r} "
                f"(it has: {', '.join(self.collection.specs)})"
            )
        unknown = sorted(set(self.spec_map.values()) - specs)
        if unknown:
            raise ConfigError(
                f"collection {self.collection.id} has no spec {', '.join(unknown)} "
                f"(it has: {', '.join(self.collection.specs)})"
            )
        if self.spec is None and not self.spec_map and len(specs) != 1:
            raise ConfigError(
                "give --spec NAME (or --group-by-stem --spec-map EXT=NAME,...): the "
                f"collection has specs {', '.join(self.collection.specs)}"
            )

    def spec_for(self, path: bytes) -> str:
        """The spec a file fills; FileError when its extension maps to none."""
        ext = _extension(path)
        if ext in self.spec_map:
            return self.spec_map[ext]
        if self.spec is not None:
            return self.spec
        if not self.spec_map and len(self.collection.specs) == 1:
            return self.collection.specs[0]
        raise FileError(f"no spec for extension {'.' + ext if ext else '(none)'} in --spec-map")

    def unit_key(self, path: bytes) -> str:
        """Files sharing a key become one data unit (folder + stem with --group-by-stem)."""
        if not self.group_by_stem:
            return os.fsdecode(path)
        stem, _ = os.path.splitext(path)
        return os.fsdecode(stem)

    def job_steps(self, path: bytes) -> JobSteps:
        """The collection workflow of the file at `path`: its plan, no step done yet."""
        stem, ext = os.path.splitext(os.path.basename(path))
        meta = {
            "origin_file_stem": display_name(stem),
            "origin_file_extension": display_name(ext.lstrip(b".")) if ext else "",
            **self.meta,
        }
        plan = UnitPlan(self.collection.id, self.spec_for(path), self.unit_key(path), meta)
        return JobSteps(plan=plan)


def _extension(path: bytes) -> str:
    return os.fsdecode(os.path.splitext(path)[1].lstrip(b".")).lower()


async def existing_units(
    client: ProtocolClient, collection: int
) -> AsyncGenerator[list[dict[str, Any]], None]:
    """The data units of `collection` the server lists, a page at a time (a DRF page or,
    from an older server, a bare list): one page in memory, not the whole collection."""
    for number in range(1, LIST_PAGES_MAX + 1):
        params = {"data_collection": str(collection), "page_size": str(LIST_PAGE_SIZE)}
        if number > 1:
            params["page"] = str(number)
        data = await client.get_json("data_units/", params)
        if isinstance(data, list):
            yield [u for u in data if isinstance(u, dict)]
            return
        results = data.get("results") if isinstance(data, dict) else None
        if not isinstance(results, list):
            raise ProtocolError("data unit list is neither a page nor a list")
        yield [u for u in results if isinstance(u, dict)]
        if not data.get("next") or not results:
            return


def _unit_id(unit: dict[str, Any]) -> Any:
    """A unit's id as journaled: an int, or the server's text escaped and bounded."""
    unit_id = unit.get("id")
    if unit_id is not None and (not isinstance(unit_id, int) or isinstance(unit_id, bool)):
        unit_id = escape_text(str(unit_id))[:64]  # server text: shown and journaled
    return unit_id


def _plan(job: Job) -> UnitPlan:
    """The plan of a job the registrar holds (only jobs with one reach it)."""
    assert job.steps.plan is not None
    return job.steps.plan


class Registrar:
    """Runs the data file and data unit steps for jobs whose upload is complete.

    Its jobs need not stay in memory: a twin's original is looked up by content
    (engine/twins.py), and the units step reads the jobs waiting for their unit from the
    journal, a page of groups at a time in (collection, unit key) order (engine/unit_wait.py),
    holding only that page."""

    def __init__(self, ctx: RegistrarContext) -> None:
        self.m = ctx  # what it may use of the manager (engine/contexts.py), nothing more
        self.twins = Twins(ctx)
        self.waiting = UnitWait(ctx.session.db)
        # A job became one waiting for its unit since the units step last read them (set by
        # the runner when a job's task ends registering): asked on every kick, O(1).
        self.due = False
        # The lost units found by this units step: a unit found is one group's, whichever
        # page that group is on (as many as the groups lost to a crash, not all of them).
        self.taken: set[Any] = set()

    async def borrow(self, job: Job) -> bool:
        """For a twin: wait for its original's data file and take it (True), or say it must
        upload its own bytes (False: the original failed, paused or is not in this run)."""
        return await self.twins.borrow(job)

    async def _retrying(
        self, job: Job, op: Callable[[], Awaitable[Any]], *, blind: bool = True
    ) -> Any:
        """`op` again after transient failures; `blind=False`: not after an outcome that
        is unknown (OutcomeUnknown is raised: the request may have been applied)."""
        attempts = 0
        while True:
            try:
                return await op()
            except TransientError as exc:
                if not blind and isinstance(exc, OutcomeUnknown):
                    raise
                attempts += 1
                if attempts > self.m.options.retries:
                    raise
                delay = self.m.backoff.delay(attempts, exc.retry_after)
                self.m.log("warning", f"registration: {exc}; retry in {delay:.1f}s", job.id)
                await asyncio.sleep(delay)

    async def data_file(self, job: Job) -> None:
        """POST data_files/ once for this job's upload (the server answers the same record
        for the same upload, so a resend after a crash does not make a second one)."""
        steps = job.steps
        if steps.data_file_id:
            return
        steps.data_file_requested = True
        self.m.journal.update(job.id, extra=steps)
        data = await self._retrying(
            job, lambda: self.m.client.post_json("data_files/", {"chunked_upload": job.upload_id})
        )
        if not isinstance(data, dict) or "id" not in data:
            raise ProtocolError("data file answer lacks an id")
        steps.data_file_id = as_id(data["id"])
        checksum = data.get("checksum") or job.md5
        steps.checksum = str(checksum) if checksum is not None else None
        self.m.journal.update(job.id, extra=steps)
        self.m.log("info", f"{job.display}: data file {escape_text(str(data['id']))}", job.id)
        self.twins.remember(job)
        self.twins.wake(job.id)  # its twins take this data file

    def _waits(self, job: Job) -> bool:
        return (
            job.state == JobState.REGISTERING
            and job.steps.plan is not None
            and bool(job.steps.data_file_id)
            and not job.steps.unit_id
            and (job.task is None or job.task.done())
            and job.id not in self.m.queue.elsewhere
        )

    async def _collect(self) -> int:
        """Fill the work list from this manager's rows waiting for their unit (read as
        committed: the caller awaited `Journal.settled`), a page of the state index at a
        time, the loop going on between pages (a million rows are seconds of work); how
        many. A row changed meanwhile is checked again when its page of groups is read."""
        self.due = False
        self.waiting.clear()
        count = 0
        async for jobs in self._waiting_pages():
            self.waiting.add((_plan(j).collection, _plan(j).unit_key, j.id) for j in jobs)
            count += len(jobs)
        return count

    async def _waiting_pages(self) -> AsyncIterator[list[Job]]:
        """This manager's jobs waiting for their unit (one held: as it is now), a page of
        the state index at a time, the loop going on between pages."""
        after = 0
        while recs := self.m.session.in_state(JobState.REGISTERING, after, PAGE, wait=False):
            yield [job for rec in recs if self._waits(job := self.m.queue.from_row(rec))]
            after = recs[-1].id
            await asyncio.sleep(0)

    async def units(self) -> None:
        """Create the data units of every complete group, in batches; adopt lost ones.
        A page of groups at a time: its jobs are held in memory while it is sent (a
        pause, a cancel or a fatal stop meanwhile finds them there), then let go."""
        await self.m.journal.settled()
        if not await self._collect():
            return
        after: tuple[int, str] | None = None
        try:
            while groups := self.waiting.groups(after, UNITS_PER_REQUEST):
                after = groups[-1][:2]
                await self.m.journal.settled()  # each page's rows as this process wrote them
                ids = [i for g in groups for i in g[2]]
                brought = {i for i in ids if i not in self.m.jobs}
                held = self._hold(ids)
                items = []
                for collection, _, ids in groups:
                    members = [held[i] for i in ids if i in held and self._waits(held[i])]
                    if members:
                        items.append((members, self._body(collection, members)))
                try:
                    if items:
                        await self._collection_units(groups[0][0], items)
                finally:
                    for job_id, job in held.items():
                        self.m.queue.maybe_release(job)
                        if job_id in brought and job.state == JobState.PAUSED:
                            self.m.queue.release(job)  # paused meanwhile: a row again
        finally:
            self.waiting.clear()
            self.taken.clear()

    def _hold(self, job_ids: list[int]) -> dict[int, Job]:
        held: dict[int, Job] = {}
        recs = self.m.session.rows([i for i in job_ids if i not in self.m.jobs])
        for job_id in job_ids:
            job = self.m.jobs.get(job_id)
            if job is None and (rec := recs.get(job_id)) is not None:
                job = self.m.queue.from_row(rec)
                self.m.queue.hold(job)
            if job is not None:
                held[job_id] = job
        return held

    @staticmethod
    def _body(collection: int, members: list[Job]) -> dict[str, Any]:
        return unit_body(
            collection,
            [
                {
                    "spec": _plan(j).spec,
                    "checksum": j.steps.checksum,
                    "path": display_name(j.path),
                    "meta": _plan(j).meta,
                }
                for j in members
            ],
        )

    async def fail_waiting(self, message: str) -> None:
        """Fail every job waiting for its unit (the units step failed), a page at a time:
        the writer's queue given room and the loop going on between pages (a million rows
        are seconds of decoding, and a write each)."""
        await self.m.journal.settled()
        async for jobs in self._waiting_pages():
            for job in jobs:
                self.m.fail(job, message)
            await self.m.journal.room()

    async def _collection_units(
        self, collection: int, items: list[tuple[list[Job], dict[str, Any]]]
    ) -> None:
        lost = [it for it in items if any(j.steps.unit_requested for j in it[0])]
        if lost:  # sent before a crash, maybe created: look before sending again
            await self._find_lost(collection, lost, items)
        for start in range(0, len(items), UNITS_PER_REQUEST):
            batch = items[start : start + UNITS_PER_REQUEST]
            for members, _ in batch:
                for job in members:
                    job.steps.unit_requested = True
                    self.m.journal.update(job.id, extra=job.steps)
            pending = list(batch)
            try:
                await self._post_units(collection, pending)
            except FileError as exc:
                for members, _ in pending:  # the ones not found on the server meanwhile
                    for job in members:
                        job.steps.unit_requested = False
                        self.m.fail(job, f"data unit refused: {exc}")

    async def _post_units(
        self, collection: int, pending: list[tuple[list[Job], dict[str, Any]]]
    ) -> None:
        """POST the units of `pending` and record them. The POST makes new units each time:
        after an answer that may be lost it is never simply sent again. The units are
        looked for first (those found recorded, and taken out of `pending`), and only the
        others are sent again, within the retry budget."""
        attempts = 0
        while pending:
            try:
                created = await self._retrying(
                    pending[0][0][0],
                    lambda: self.m.client.post_json("data_units/", [body for _, body in pending]),
                    blind=False,
                )
            except OutcomeUnknown as exc:
                attempts += 1
                if attempts > self.m.options.retries:
                    raise
                delay = self.m.backoff.delay(attempts, exc.retry_after)
                self.m.log(
                    "warning",
                    f"registration: {exc}; looking for the units in {delay:.1f}s",
                    pending[0][0][0].id,
                )
                await asyncio.sleep(delay)
                await self._find_lost(collection, list(pending), pending)
                continue
            if isinstance(created, dict):
                created = [created]
            if not isinstance(created, list) or len(created) != len(pending):
                raise ProtocolError("data unit answer does not match the request")
            for (members, _), unit in zip(pending, created, strict=True):
                self._record(members, unit)
            pending.clear()

    async def _find_lost(
        self,
        collection: int,
        lost: list[tuple[list[Job], dict[str, Any]]],
        items: list[tuple[list[Job], dict[str, Any]]],
    ) -> None:
        """Record the lost units the server has (and take them out of `items`), reading its
        list a page at a time, and no further than the last one found."""
        taken = self.taken  # a unit found is one group's: twins alike get their own
        await self.m.journal.settled()  # the units recorded so far, read without a wait
        pages = existing_units(self.m.client, collection)
        try:
            async for page in pages:
                recorded: dict[tuple[str, int], dict[Any, set[int]]] = {}  # by content
                for members, body in list(lost):
                    match = next(
                        (
                            u
                            for u in page
                            if u.get("id") not in taken
                            and same_unit(u, body)
                            and not self._anothers(members, u, page, recorded)
                        ),
                        None,
                    )
                    if match is not None:
                        taken.add(match.get("id"))
                        self._record(members, match)
                        items.remove((members, body))
                        lost.remove((members, body))
                if not lost:
                    break
        finally:
            await pages.aclose()

    def _anothers(
        self,
        members: list[Job],
        unit: dict[str, Any],
        page: list[dict[str, Any]],
        recorded: dict[tuple[str, int], dict[Any, set[int]]],
    ) -> bool:
        """Is `unit` (as the server lists it) one this journal recorded for another group?
        Read as committed, never waiting for the writer on the loop (another process may
        hold its lock): a unit recorded earlier in this step was settled before the look
        began, and one found during it is in `taken`. One read per content and page, kept
        in `recorded`: equal groups pass each other's units, a read each was quadratic."""
        first = members[0]
        content = (first.fingerprint, first.size)
        if content not in recorded:
            recorded[content] = self.m.journal.units_recorded(
                self.m.options.host, *content, [i for u in page if (i := _unit_id(u)) is not None]
            )
        return bool(recorded[content].get(_unit_id(unit), set()) - {j.id for j in members})

    def _record(self, members: list[Job], unit: dict[str, Any]) -> None:
        unit_id = _unit_id(unit)
        collection = unit.get("data_collection")
        if not isinstance(collection, int) or isinstance(collection, bool):
            collection = _plan(members[0]).collection
        for job in members:
            job.steps.unit_id = unit_id
            job.steps.unit_requested = False
            self.m.journal.update(job.id, extra=job.steps)
            self.m.set_state(job, JobState.DONE)
        self.m.emit(
            UnitRegistered(
                unit_id=unit_id,
                collection=collection,
                paths=[j.display for j in members],
            )
        )
