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
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
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
from synapse_tui.engine.events import Event, JobState, JobStateChanged, UnitRegistered
from synapse_tui.engine.job import Job
from synapse_tui.engine.names import display_name, escape_text
from synapse_tui.engine.protocol import ProtocolClient
from synapse_tui.engine.steps import JobSteps, UnitPlan, as_id
from synapse_tui.engine.uploader import Paused

__all__ = ["Collection", "CollectionPlan", "Registrar", "fetch_collection", "list_collections"]

UNITS_PER_REQUEST = 100
LIST_PAGE_SIZE = 1000  # units per page when looking for lost ones
LIST_PAGES_MAX = 10_000  # a bound on that walk, whatever the server answers


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


def parse_spec_map(text: str) -> dict[str, str]:
    """'jpg=image,json=meta' -> {'jpg': 'image', 'json': 'meta'}."""
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        ext, sep, spec = part.partition("=")
        if not sep or not ext.strip() or not spec.strip():
            raise ValueError(f"--spec-map takes EXT=NAME pairs separated by commas, not {part!r}")
        out[ext.strip().lstrip(".").lower()] = spec.strip()
    return out


def parse_meta(pairs: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--meta takes KEY=VALUE, not {pair!r}")
        out[key] = value
    return out


def unit_body(collection: int, members: list[dict[str, Any]]) -> dict[str, Any]:
    """The data unit for a group of registered files (each: spec, checksum, path, meta)."""
    files = {m["spec"]: {"checksum": m["checksum"], "path": m["path"]} for m in members}
    meta: dict[str, Any] = {}
    for m in members:
        meta.update(m["meta"])
    if len(members) > 1:
        meta["origin_file_extension"] = ",".join(
            sorted(m["meta"].get("origin_file_extension", "") for m in members)
        )
    return {"data_collection": collection, "files": files, "meta": meta}


def same_unit(found: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """Is `found` (from the server) the unit `wanted` describes? Files' checksums and stem."""
    try:
        found_files = {k: v["checksum"] for k, v in found["files"].items()}
    except (KeyError, TypeError, AttributeError):
        return False
    wanted_files = {k: v["checksum"] for k, v in wanted["files"].items()}
    stem = (found.get("meta") or {}).get("origin_file_stem")
    return found_files == wanted_files and stem == wanted["meta"].get("origin_file_stem")


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


def _plan(job: Job) -> UnitPlan:
    """The plan of a job the registrar holds (only jobs with one reach it)."""
    assert job.steps.plan is not None
    return job.steps.plan


class Registrar:
    """Runs the data file and data unit steps for jobs whose upload is complete."""

    def __init__(self, ctx: RegistrarContext) -> None:
        self.m = ctx  # what it may use of the manager (engine/contexts.py), nothing more
        self._waiting: dict[int, list[asyncio.Future[None]]] = {}  # original job id -> twins
        ctx.subscribe(self._on_event)

    # -- twins: the same content twice in one run ------------------------------------------

    def _on_event(self, event: Event) -> None:
        if isinstance(event, JobStateChanged) and event.job_id in self._waiting:
            self._wake(event.job_id)

    def _wake(self, job_id: int) -> None:
        for future in self._waiting.pop(job_id, []):
            if not future.done():
                future.set_result(None)

    def _original(self, job: Job) -> Job | None:
        """The job of this run that uploads the twin's content (one with a data file first)."""
        same = [
            j
            for j in self.m.jobs.values()
            if j is not job
            and not j.steps.twin
            and j.fingerprint == job.fingerprint
            and j.size == job.size
        ]
        same.sort(key=lambda j: (not j.steps.data_file_id, j.state.terminal, j.id))
        return same[0] if same else None

    async def borrow(self, job: Job) -> bool:
        """For a twin: wait for its original's data file and take it (True), or say it must
        upload its own bytes (False: the original failed, paused or is not in this run)."""
        steps = job.steps
        if not steps.twin:
            return False
        while True:
            original = self._original(job)
            if original is None:  # not in this run (a resume): uploaded by an earlier one?
                await self.m.journal.settled()  # the reads below wait for no write
                entry = self.m.journal.uploaded(self.m.options.host, job.fingerprint, job.size)
                if entry is None:
                    return False
                job.upload_id, job.md5 = entry.upload_id, entry.md5
                steps.uploaded = True  # its data file is asked for next
                known = self.m.journal.data_file_of(self.m.options.host, job.fingerprint, job.size)
                if known is not None:  # a presigned upload's: its file key is no chunked upload
                    steps.data_file_id, steps.checksum = known
                self.m.journal.update(job.id, upload_id=job.upload_id, md5=job.md5, extra=steps)
                return True
            if original.steps.data_file_id and original.steps.checksum:
                job.upload_id, job.md5 = original.upload_id, original.md5
                steps.uploaded = True
                steps.data_file_id = original.steps.data_file_id
                steps.checksum = original.steps.checksum
                self.m.journal.update(job.id, upload_id=job.upload_id, md5=job.md5, extra=steps)
                self.m.log("info", f"{job.display}: same content as {original.display}", job.id)
                return True
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
        self._wake(job.id)  # its twins take this data file

    def pending(self) -> list[Job]:
        return [
            j
            for j in self.m.jobs.values()
            if j.state == JobState.REGISTERING
            and j.steps.plan is not None
            and j.steps.data_file_id
            and not j.steps.unit_id
            and (j.task is None or j.task.done())
        ]

    async def units(self) -> None:
        """Create the data units of every complete group, in batches; adopt lost ones."""
        groups: dict[tuple[int, str], list[Job]] = {}
        for job in self.pending():
            plan = _plan(job)
            groups.setdefault((plan.collection, plan.unit_key), []).append(job)
        by_collection: dict[int, list[tuple[list[Job], dict[str, Any]]]] = {}
        for (collection, _), members in groups.items():
            body = unit_body(
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
            by_collection.setdefault(collection, []).append((members, body))
        for collection, items in by_collection.items():
            await self._collection_units(collection, items)

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
        taken: set[Any] = set()  # a unit found is one group's: twins alike get their own
        pages = existing_units(self.m.client, collection)
        try:
            async for page in pages:
                for members, body in list(lost):
                    match = next(
                        (u for u in page if u.get("id") not in taken and same_unit(u, body)),
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

    def _record(self, members: list[Job], unit: dict[str, Any]) -> None:
        unit_id = unit.get("id")
        if unit_id is not None and (not isinstance(unit_id, int) or isinstance(unit_id, bool)):
            unit_id = escape_text(str(unit_id))[:64]  # server text: shown and journaled
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
