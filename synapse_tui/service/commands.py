"""What the engine does for each command of the wire protocol."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from synapse_tui.engine.credentials import Credentials
from synapse_tui.engine.errors import ConfigError, TransientError
from synapse_tui.engine.events import JobState, ScanProgress
from synapse_tui.engine.journal import JobRecord
from synapse_tui.engine.scheduler import UploadManager
from synapse_tui.service import engine_settings, queries
from synapse_tui.service.engine_settings import STRATEGIES
from synapse_tui.service.routing import CURRENT_BATCH, Batch
from synapse_tui.service.spawn import LOG_LIMIT, LOG_NAME, UnsafeStateFile, open_state_file
from synapse_tui.service.store import MAX_WINDOW
from synapse_tui.service.wire import (
    MAX_LINE,
    Add,
    Collections,
    Command,
    Configure,
    Control,
    JobInfo,
    ListJobs,
    Prune,
    Resume,
    ScanPage,
    ScanStart,
    Set,
    Status,
    StatusJobs,
    Stop,
    Subscribe,
    event_to_wire,
)

if TYPE_CHECKING:
    from synapse_tui.service.daemon import EngineService
    from synapse_tui.service.peer import Peer

MAX_READ = MAX_LINE + 1024  # the reader's buffer: one line and a little


def rotate_log_if_big(state_dir: Path) -> None:
    """Past LOG_LIMIT the log becomes engine.log.1 and stdout/stderr (where the engine's
    log lines and any crash go) move to a fresh file."""
    path = state_dir / LOG_NAME
    try:
        if os.fstat(2).st_size < LOG_LIMIT or not path.exists():
            return
        os.replace(path, path.with_name(LOG_NAME + ".1"))
        fd = open_state_file(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    except (OSError, UnsafeStateFile) as exc:  # the log goes on in the file it had
        with contextlib.suppress(OSError):
            os.write(2, f"log not rotated: {exc}\n".encode())


def renice(increment: int) -> None:
    """Every thread of this process `increment` nice levels lower (threads started later
    inherit it). Best effort: Linux lists its threads in /proc."""
    if increment <= 0:
        return
    try:
        base = os.getpriority(os.PRIO_PROCESS, os.getpid())
        for tid in os.listdir("/proc/self/task"):
            os.setpriority(os.PRIO_PROCESS, int(tid), min(19, base + increment))
    except (OSError, ValueError):
        pass


def _manager(service: EngineService) -> UploadManager:
    if service.manager is None:
        raise ConfigError(
            "no backend configured: give --host and --token, set SYNAPSE_HOST and "
            "SYNAPSE_ACCESS_TOKEN, or run `synapse-tui serve` for a local one"
        )
    if service.stopping:
        raise ConfigError(f"the engine is stopping ({service.stopping})")
    return service.manager


async def _reach(service: EngineService, m: UploadManager) -> None:
    """The backend answers and takes the credentials, before anything is queued (as the
    in-process CLI checks before it opens the journal)."""
    if service.reached:
        return
    from synapse_tui.engine.presigned import service as presigned

    presigned(m).ask_early()  # in parallel with the ping and the scan
    for attempt in range(3):
        try:
            await m.client.ping()
            service.reached = True
            return
        except TransientError as exc:
            if attempt == 2:
                raise ConfigError(f"backend unreachable: {exc}") from None
            await asyncio.sleep(0.5 * (attempt + 1))


# Commands that read the journal on the engine's loop (a window, job details, bulk
# controls, status pages): see `_settled`.
_READERS = (ListJobs, JobInfo, Control, Resume, StatusJobs, Prune)


async def _settled(service: EngineService) -> None:
    """Await the writes this engine queued before a command reads the journal: its reads
    then find nothing to wait for, so SQLite's wait for a write lock another process holds
    stays on the journal's writer thread, never on this loop, which moves every upload."""
    if service.journal is not None:
        await service.journal.settled()


async def handle(service: EngineService, peer: Peer, command: Command) -> dict[str, Any]:
    """The reply's fields; raises ConfigError / SynapseError for a refusal."""
    if isinstance(command, _READERS):
        await _settled(service)
    if isinstance(command, Status):
        return service.status()
    if isinstance(command, Subscribe):
        peer.subscribed = True
        totals = service.router.last_totals
        return {**service.status(), "totals": event_to_wire(totals) if totals else None}
    if isinstance(command, Collections):
        return await _collections(service)
    if isinstance(command, Stop):
        service.request_stop(f"asked by client {peer.number} ({peer.role})")
        return {}
    if isinstance(command, Add):
        return await _add(service, peer, command)
    if isinstance(command, Resume):
        m = _manager(service)
        await _reach(service, m)
        batch = service.router.new_batch(peer if command.follow else None, events=command.events)
        token = CURRENT_BATCH.set(batch)
        try:
            if command.keep_paused:  # a dashboard attaching: the user's pauses hold
                count = m.resume_unfinished(kept_paused(service))
            else:  # `synapse-tui resume`: what the engine holds paused goes on too
                count = m.resume_unfinished()
                count += _resume_held(service, m, batch)
        finally:
            CURRENT_BATCH.reset(token)
        if not command.keep_paused and service.store is not None:  # the client's pauses go
            await service.store.save_async(paused=[], resumed=[], paused_all=False)
        service.router.check_soon(batch)
        return {"batch": batch.id, "count": count}
    if isinstance(command, Control):
        return await _control(service, peer, command)
    if isinstance(command, Set):
        return await _set(service, command)
    if isinstance(command, ListJobs):
        return _list(service, command)
    if isinstance(command, JobInfo):
        return _job(service, command.job)
    if isinstance(command, Configure):
        return await _configure(service, command)
    if isinstance(command, StatusJobs | Prune | ScanStart | ScanPage):
        return await queries.handle(service, peer, command)
    raise ConfigError(f"{command.NAME} is not a command here")


async def _add(service: EngineService, peer: Peer, command: Add) -> dict[str, Any]:
    from synapse_tui.engine.catalog import resolve_collection
    from synapse_tui.engine.collections import CollectionPlan, parse_meta, parse_spec_map
    from synapse_tui.engine.filters import PathFilter

    path_filter = PathFilter.from_wire(command.filters)  # bad ones refused before any scan
    m = _manager(service)
    await _reach(service, m)
    plan = None
    if command.collection is not None:
        try:
            spec_map = parse_spec_map(command.spec_map)
            meta = parse_meta(command.meta)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        # An id or a name (the CLI's --collection sends what it was given, as the
        # foreground's resolve_collection takes it): a str on the wire was refused before.
        collection = await resolve_collection(m.client, str(command.collection))
        plan = CollectionPlan(collection, command.spec, command.group_by_stem, spec_map, meta)
        plan.validate()
    if command.chunk_size is not None:
        if command.chunk_size < 1:
            raise ConfigError("chunk size must be at least 1 byte")
        m.options.chunk_size = command.chunk_size  # the engine's default from now on
    batch = service.router.new_batch(
        peer if command.follow else None,
        plan.collection.id if plan is not None else None,
        command.events,
    )
    paths = [os.fsencode(p) for p in command.paths]
    token = CURRENT_BATCH.set(batch)
    try:  # the task copies the context: the scan's events carry the batch
        batch.task = asyncio.create_task(
            _scan(service, batch, m, paths, command.force, command.priority, plan, path_filter),
            name=f"add-{batch.id}",
        )
    finally:
        CURRENT_BATCH.reset(token)
    return {"batch": batch.id}


async def _scan(
    service: EngineService,
    batch: Batch,
    m: UploadManager,
    paths: list[bytes],
    force: bool,
    priority: int,
    plan: Any,
    path_filter: Any,
) -> None:
    try:
        t = await m.add_paths(
            paths, force=force, priority=priority, plan=plan, path_filter=path_filter
        )
        wanted = batch.events is None or "scan" in batch.events
        if batch.peer is not None and wanted:  # its own scan line (the engine's counts all)
            scan = ScanProgress(
                t.files, t.bytes, t.duplicates, t.already_uploaded, t.skipped, True, t.failed
            )
            batch.peer.send(event_to_wire(scan))
    except asyncio.CancelledError:
        pass
    except Exception as exc:
        m.log("error", service.clean(f"queueing failed: {type(exc).__name__}: {exc}"))
    finally:
        if batch.peer is None:
            service.router.forget(batch)
        else:
            service.router.check_soon(batch)


MAX_PAUSED_IDS = 10_000  # jobs paused one by one that the settings remember


def _resume_held(service: EngineService, m: UploadManager, batch: Batch) -> int:
    """Resume the paused jobs the engine holds (the journal's were just queued); the
    batch follows them. Forgets the pauses a client asked for."""
    owner = service.router.owner
    held = [j for j in m.jobs.values() if j.state == JobState.PAUSED and owner(j.id) is not batch]
    for job in held:
        service.router.adopt(job)  # in this batch's context: followed, announced, resumed
    return len(held)


def kept_paused(service: EngineService) -> Callable[[JobRecord], bool]:
    """Which jobs of the journal a client's command paused (the settings table): those
    are taken back paused when an engine takes the journal's jobs back (a restart, a
    `configure`), every one of them, in memory or only a row (also one whose pause had
    not landed when the engine died). Jobs the engine paused itself (it stopped, or was
    reconfigured) go on."""
    saved = service.store.settings() if service.store is not None else {}
    paused = {j for j in saved.get("paused", []) if isinstance(j, int)}
    resumed = {j for j in saved.get("resumed", []) if isinstance(j, int)}
    paused_all = bool(saved.get("paused_all"))
    return lambda rec: (paused_all and rec.id not in resumed) or rec.id in paused


async def _remember_pauses(service: EngineService, command: Control) -> None:
    if service.store is None or command.action not in ("pause", "resume", "cancel"):
        return
    if command.job is None and command.action == "cancel":
        return
    await service.store.update_async(lambda saved: _pauses_after(saved, command))


def _pauses_after(saved: dict[str, Any], command: Control) -> dict[str, Any]:
    """The settings of the user's pauses once `command` is made."""
    paused = {j for j in saved.get("paused", []) if isinstance(j, int)}
    resumed = {j for j in saved.get("resumed", []) if isinstance(j, int)}  # after a pause-all
    paused_all = bool(saved.get("paused_all"))
    if command.job is None:
        paused_all = command.action == "pause"
        paused.clear()
        resumed.clear()
    elif command.action == "pause":
        paused.add(command.job)
        resumed.discard(command.job)
    else:
        paused.discard(command.job)
        if paused_all:
            resumed.add(command.job)
    return {
        "paused": sorted(paused)[-MAX_PAUSED_IDS:],
        "resumed": sorted(resumed)[-MAX_PAUSED_IDS:],
        "paused_all": paused_all,
    }


async def _control(service: EngineService, peer: Peer, command: Control) -> dict[str, Any]:
    """A control verb; answered once its rows are changed (the loop goes on meanwhile:
    see engine/controls.py)."""
    m = _manager(service)
    action = command.action
    if command.batch is not None:
        batch = service.router.batches.get(command.batch)
        if batch is None or batch.peer is not peer:
            return {"left": 0}
        if batch.task is not None:
            batch.task.cancel()
        if action != "pause":
            raise ConfigError("a batch can only be paused")
        # The batch's rows go to the journal's writer a page at a time (a batch may be a
        # million), each page read once the writes before it are in.
        m.controls.pause_each(service.router.unfinished(batch))
        await m.controls.done()
        return {"left": service.router.left(batch)}
    simple = {"retry": m.retry_failed, "drain": m.drain, "undrain": m.undrain}
    if action in simple:
        simple[action]()
        if action in ("drain", "undrain") and service.store is not None:
            await service.store.save_async(draining=m.draining)
        await m.controls.done()
        return {}
    per_job = {"pause": m.pause, "resume": m.resume, "cancel": m.cancel}
    if action not in per_job:
        raise ConfigError(f"unknown action {action!r}")
    await _remember_pauses(service, command)
    if command.job is not None:
        per_job[action](command.job)
    elif action == "pause":
        m.pause_all()
    elif action == "resume":
        m.resume_all()
        if service.store is not None:
            await service.store.save_async(draining=False)
    else:
        raise ConfigError("cancel needs a job")
    await m.controls.done()
    return {}


async def _set(service: EngineService, command: Set) -> dict[str, Any]:
    m = _manager(service)
    if command.concurrency is not None:
        await m.set_concurrency(command.concurrency)
    if command.bwlimit is not None:
        m.set_bwlimit(command.bwlimit if command.bwlimit > 0 else None)
    if command.job is not None and command.priority is not None:
        m.set_priority(command.job, command.priority)
    changed = (command.concurrency, command.bwlimit) != (None, None)
    if service.store is not None and changed and command.persist:
        await service.store.save_async(
            concurrency=m.options.concurrency, bwlimit=m.options.bwlimit or 0
        )
    return {"concurrency": m.options.concurrency, "bwlimit": m.options.bwlimit}


async def _collections(service: EngineService) -> dict[str, Any]:
    from synapse_tui.engine.collections import list_collections
    from synapse_tui.engine.errors import UploadGone

    m = _manager(service)
    try:
        found = await list_collections(m.client)
    except UploadGone as exc:
        raise Gone(str(exc)) from None
    return {"collections": [{"id": c.id, "name": c.name, "specs": list(c.specs)} for c in found]}


class Gone(Exception):
    """Refused with kind "gone": the backend answered 404 (the client raises UploadGone)."""


def _engine_window(m: UploadManager, command: ListJobs) -> dict[str, Any]:
    """The jobs the engine holds, by id: a window read by index from the journal (issue
    21), live state for those in memory; the count from the engine's counters."""
    from synapse_tui.engine import queue_view

    state = command.state
    if state and state != queue_view.ACTIVE_FILTER and state not in _STATES:
        return {"total": 0, "offset": command.offset, "jobs": []}
    known = None
    if command.known_id is not None and command.known_index is not None:
        known = (command.known_id, command.known_index)
    ask = queue_view.Ask(
        offset=max(0, command.offset),
        limit=max(0, min(MAX_WINDOW, command.limit)),
        state=state,
        at=command.at,
        follow=command.follow,
        before=max(0, command.before),
        known=known,
    )
    answer = queue_view.window(m, ask)
    rows = [
        {
            "id": j.id,
            "path": j.display,
            "size": j.size,
            "state": j.state.value,
            "sent": j.sent,
            "attempts": j.attempts,
            "last_error": j.last_error,
            "upload_id": j.upload_id,
            "md5": j.md5,
        }
        for j in answer.jobs
    ]
    # The counters as they are now (O(1)): a window's counts never lag its rows.
    counts = {s.value: n for s, n in m.counters.count.items()}
    return {
        "total": answer.total,
        "offset": answer.offset,
        "jobs": rows,
        "anchor": answer.anchor,
        "counts": counts,
    }


_STATES = frozenset(s.value for s in JobState)


def _list(service: EngineService, command: ListJobs) -> dict[str, Any]:
    m = service.manager
    if m is None or service.store is None:
        return {"total": 0, "jobs": [], "counts": {}}
    counts = service.router.last_totals.counts if service.router.last_totals else {}
    if command.scope == "engine":
        return _engine_window(m, command)
    total, rows = service.store.window(m.options.host, command.offset, command.limit, command.state)
    for row in rows:  # what only the engine's memory knows: the live state and bytes sent
        job = m.jobs.get(row["id"])
        if job is not None:
            row.update(state=job.state.value, sent=job.sent, attempts=job.attempts)
            row["last_error"] = job.last_error
    return {"total": total, "offset": command.offset, "jobs": rows, "counts": counts}


def _job(service: EngineService, job_id: int) -> dict[str, Any]:
    m = service.manager
    job = m.get(job_id) if m is not None else None
    if m is None or job is None:
        return {"job": None}
    return {
        "job": {
            "job_id": job.id,
            "path": job.display,
            "size": job.size,
            "state": job.state.value,
            "upload_id": job.upload_id,
            "upload_url": job.upload_url,
            "offset": job.offset,
            "sent": job.sent,
            "md5": job.md5,
            "attempts": job.attempts,
            "resumed_from": job.resumed_from,
            "last_error": job.last_error,
            # As committed: waiting for the writer would block the loop (another process's lock)
            "errors": m.journal.errors(job_id, wait=False),
            "collection": job.steps.collection,
            "spec": job.steps.spec,
            "data_file_id": job.steps.data_file_id,
            "unit_id": job.steps.unit_id,
        }
    }


async def _configure(service: EngineService, command: Configure) -> dict[str, Any]:
    """New backend or credentials (also after a 401/403 stopped everything): the jobs in
    flight pause at a chunk boundary, the manager is rebuilt, the journal's unfinished
    jobs of the (new) host resume."""
    s = service.settings
    fresh = bool(command.access_token or command.user_token)
    if command.host:
        if not command.host.startswith(("http://", "https://")):
            raise ConfigError(f"host must start with http:// or https://: {command.host}")
        if command.host.rstrip("/") != s.host and not fresh:
            # The credentials kept are the old host's: they never go to another one.
            raise ConfigError("a new host needs its own credentials (--token)")
        s.host = command.host.rstrip("/")
    if fresh:
        s.credentials = Credentials(command.access_token, command.user_token, command.tenant)
    if command.strategy is not None and command.strategy not in STRATEGIES:
        raise ConfigError(f"strategy must be auto, presigned or chunked, not {command.strategy!r}")
    if command.retries is not None and command.retries < 0:
        raise ConfigError("retries must be 0 or more")
    proxy_env = engine_settings.proxy_env(command.proxy_env) if command.proxy == "" else None
    for key in ("insecure", "strategy", "retries"):  # None: the engine's own kept
        if getattr(command, key) is not None:
            setattr(s, key, getattr(command, key))
    if command.ca_bundle is not None:
        s.ca_bundle = command.ca_bundle or None
    if command.proxy is not None:
        s.proxy, s.proxy_env = command.proxy or None, proxy_env
    had = service.manager is not None
    if service.manager is not None:
        await service.quiesce("paused: reconfiguring")
        service.manager = service.router.manager = None
    with contextlib.suppress(ConfigError):
        service.build_manager()
    if service.manager is None:
        raise ConfigError("no backend configured")
    await _reach(service, service.manager)
    resumed = service.manager.resume_unfinished(kept_paused(service)) if had else 0
    return {"resumed": resumed, **service.status()}
