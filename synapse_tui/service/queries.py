"""The engine's answers to `status` and `scan`: pages a client pulls, never the whole journal."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import itertools
import os
import struct
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from synapse_tui.engine.errors import ConfigError
from synapse_tui.engine.events import JobState
from synapse_tui.engine.journal import FINISHED, UNFINISHED
from synapse_tui.engine.names import display_path
from synapse_tui.engine.pacing import ScanPacer
from synapse_tui.engine.scan_check import Checked
from synapse_tui.engine.seen_index import SeenKey
from synapse_tui.service.wire import Command, Prune, ScanPage, ScanStart, StatusJobs

if TYPE_CHECKING:
    from synapse_tui.engine.scheduler import UploadManager
    from synapse_tui.service.daemon import EngineService
    from synapse_tui.service.peer import Peer

MAX_PAGE = 1000  # rows or findings per answer: a page is bounded, the client asks again
SCAN_AHEAD = 2000  # findings a scan holds for a client that has not asked for them yet
SHOWN = [s.value for s in (*UNFINISHED, JobState.FAILED)]  # `status` without --all
_OFD_GETLK: int | None = getattr(fcntl, "F_OFD_GETLK", None)
_scan_ids = itertools.count(1)


async def pause(seconds: float) -> None:
    """An engine scan's pause between batches (tests replace it to count the pauses)."""
    await asyncio.sleep(seconds)


async def handle(service: EngineService, peer: Peer, command: Command) -> dict[str, Any]:
    if isinstance(command, StatusJobs):
        return status_jobs(service, command)
    if isinstance(command, Prune):
        assert service.journal is not None
        pruned, kept = await service.journal.prune_async(FINISHED)  # the loop goes on
        return {"pruned": pruned, "kept": kept}
    if isinstance(command, ScanStart):
        return start_scan(service, peer, command)
    assert isinstance(command, ScanPage)
    return await scan_page(peer, command)


def driven_elsewhere(state_dir: Path, job_id: int) -> bool:
    """Whether any journal (this engine's, or another process's) holds the job's lock,
    asked without taking it (an OFD lock query from a description of our own). Where
    that cannot be asked, the job counts as driven (its state is shown as it is)."""
    if _OFD_GETLK is None:
        return True
    try:
        fd = os.open(state_dir / "jobs.lock", os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return False  # no job was ever locked here
    except OSError:
        return True
    try:
        query = struct.pack("hhqqi4x", fcntl.F_WRLCK, os.SEEK_SET, job_id, 1, 0)
        answer = fcntl.fcntl(fd, _OFD_GETLK, query)
    except OSError:
        return True
    finally:
        os.close(fd)
    return struct.unpack("hhqqi4x", answer)[0] != fcntl.F_UNLCK


def _waits_for_unit(m: UploadManager | None, row: Any) -> bool:
    """A registering row of the engine's manager, not in memory: it waits for its data unit
    (engine/lookahead.py lets those go), and the units step drives it without a lock."""
    return (
        m is not None
        and row["state"] == JobState.REGISTERING.value
        and m.stopped is None
        and m.session.has(row["id"])
    )


def status_jobs(service: EngineService, command: StatusJobs) -> dict[str, Any]:
    """One page of `status`: the journal's rows with what the engine's memory knows laid
    over them (live state, offset); a failure a later upload of the path made good and a
    job that finished meanwhile are left out unless `every`."""
    assert service.store is not None
    limit = max(1, min(MAX_PAGE, command.limit))
    after = None
    if command.after_priority is not None:
        after = (command.after_priority, command.after_id)
    rows = service.store.status_rows(None if command.every else SHOWN, after, limit)
    m = service.manager
    failed = [r for r in rows if r["state"] == JobState.FAILED.value]
    since: dict[str, dict[bytes, float]] = {}
    if not command.every:
        for host in {r["host"] for r in failed}:
            paths = [bytes(r["path"]) for r in failed if r["host"] == host]
            since[host] = service.store.uploaded_since(host, paths)
    out: list[dict[str, Any]] = []
    for r in rows:
        row = {
            "id": r["id"],
            "state": r["state"],
            "path": display_path(bytes(r["path"])),
            "size": r["size"],
            "offset": r["offset"],
            "host": r["host"],
            "upload_id": r["upload_id"],
            "md5": r["md5"],
            "attempts": r["attempts"],
            "last_error": r["last_error"],
        }
        job = m.jobs.get(r["id"]) if m is not None else None
        if job is not None:  # the row may lag the engine by a few ms
            row.update(state=job.state.value, offset=job.offset, attempts=job.attempts)
            row.update(upload_id=job.upload_id, md5=job.md5, last_error=job.last_error)
        elif (
            JobState(r["state"]).active
            and not _waits_for_unit(m, r)
            and not driven_elsewhere(service.state_dir, r["id"])
        ):
            row["state"] = "interrupted"  # nobody drives it: a crashed or killed run
        if not command.every:
            if row["state"] not in SHOWN and row["state"] != "interrupted":
                continue  # finished since the row was written
            done_at = since.get(r["host"], {}).get(bytes(r["path"]))
            if row["state"] == "failed" and done_at is not None and done_at >= r["updated_at"]:
                continue
        out.append(row)
    last = rows[-1] if len(rows) == limit else None
    cursor = [last["priority"], last["id"]] if last is not None else None
    return {"jobs": out, "next": cursor}


# -- scan -------------------------------------------------------------------------------------


@dataclass
class ScanRun:
    """One client's `scan`: findings wait in a bounded queue until the client pulls them."""

    id: int
    peer: Peer
    findings: asyncio.Queue[dict[str, Any] | None] = field(
        default_factory=lambda: asyncio.Queue(SCAN_AHEAD)
    )
    totals: dict[str, int] = field(default_factory=lambda: {"files": 0, "bytes": 0})
    task: asyncio.Task[None] | None = None
    pacer: ScanPacer | None = None  # set while it runs in an engine with a manager
    path_filter: Any = None  # its --include/--exclude (a PathFilter), read once at start


def start_scan(service: EngineService, peer: Peer, command: ScanStart) -> dict[str, Any]:
    from synapse_tui.engine.filters import PathFilter

    path_filter = PathFilter.from_wire(command.filters)  # bad ones refused before the scan
    run = ScanRun(next(_scan_ids), peer, path_filter=path_filter)
    if len(peer.scans) >= 4:
        raise ConfigError("this connection runs 4 scans already")
    peer.scans[run.id] = run
    run.task = asyncio.create_task(_scan(service, run, command), name=f"scan-{run.id}")
    return {"scan": run.id}


def _findings(
    service: EngineService, command: ScanStart, path_filter: Any = None
) -> AsyncGenerator[Checked, None]:
    """The scan's batches, checked against this engine's ledger."""
    from synapse_tui.engine.scan_check import Ledger, check_scan

    journal, host = service.journal, command.host
    ledger: Ledger | None = None
    if journal is not None and host:
        # As committed: waiting for the engine's writes would block its loop (on another
        # process's lock, for as long as that holds it). One query per batch.
        def ledger(keys: Sequence[SeenKey]) -> dict[SeenKey, str]:
            return journal.uploads_of(host, keys, wait=False)

    return check_scan([os.fsencode(p) for p in command.paths], ledger, path_filter)


async def _scan(service: EngineService, run: ScanRun, command: ScanStart) -> None:
    gone = asyncio.ensure_future(run.peer.closed.wait())
    # Uploads running in this engine first: the scan only reports, it feeds none of them.
    # The pacer asks the engine's manager of the moment (below): one held from the start
    # would be the closed one after a `configure`, which runs nothing (no pause, ever).

    async def offer(item: dict[str, Any] | None) -> bool:
        """Queue `item` when the client makes room; False once the client has left."""
        put = asyncio.ensure_future(run.findings.put(item))
        await asyncio.wait({put, gone}, return_when=asyncio.FIRST_COMPLETED)
        if not put.done():
            put.cancel()
            return False
        return True

    try:
        async with contextlib.aclosing(_findings(service, command, run.path_filter)) as batches:
            async for checked in batches:  # closed at once when the client leaves
                run.totals["files"] += checked.files
                run.totals["bytes"] += checked.bytes
                for finding in checked.findings:
                    if not await offer(finding):
                        return  # the client left: nobody reads the rest
                if (m := service.manager) is not None:
                    if run.pacer is None or run.pacer.m is not m:  # `configure` made a new one
                        run.pacer = ScanPacer(m, sleep=pause, feeds=False)
                    await run.pacer.after(checked.seconds)  # the loop time its checks took
    except Exception as exc:  # the client hears it as a failed path, not a hang
        reason = service.clean(f"the scan failed: {type(exc).__name__}: {exc}")
        if not await offer({"kind": "failed", "path": "", "reason": reason}):
            return
    finally:
        if not gone.done():
            await offer(None)  # the end: the totals go with the last page
        gone.cancel()


async def scan_page(peer: Peer, command: ScanPage) -> dict[str, Any]:
    """Up to `limit` findings, waiting for the first; `done` with the totals at the end."""
    run = peer.scans.get(command.scan)
    if run is None:
        return {"findings": [], "done": True, "files": 0, "bytes": 0}
    out: list[dict[str, Any]] = []
    limit = max(1, min(MAX_PAGE, command.limit))
    finding = await run.findings.get()
    while finding is not None:
        out.append(finding)
        if len(out) >= limit or run.findings.empty():
            return {"findings": out, "done": False}
        finding = run.findings.get_nowait()
    peer.scans.pop(run.id, None)
    return {"findings": out, "done": True, **run.totals}
