"""The dashboard's door to the background engine: the bridge's methods, over the socket.

It runs in the UI's own loop (socket reads are cheap; the engine coalesces progress per
client). Events are batched as EngineBridge batches them (ui/coalesce.py). Nothing of the
queue is loaded at attach: the queue pane asks for the window it shows (`window`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Sequence
from typing import Any

from synapse_tui.config import Settings
from synapse_tui.engine.collections import Collection, CollectionPlan
from synapse_tui.engine.errors import UploadGone
from synapse_tui.engine.journal import Journal
from synapse_tui.engine.names import absolute
from synapse_tui.engine.queue_view import Ask
from synapse_tui.service import wire
from synapse_tui.service.client import EngineClient, Refused, connect
from synapse_tui.service.store import uploaded_paths
from synapse_tui.ui.coalesce import Coalescer, Poster
from synapse_tui.ui.messages import EngineError, EngineStarted, JobDetails, QueueWindow, WindowRow

log = logging.getLogger("synapse_tui.ui")


class ServiceBridge:
    """Same calls as EngineBridge; the engine is another process that outlives this one."""

    def __init__(
        self,
        target: Poster,
        settings: Settings,
        *,
        progress_interval: float = 0.25,
        urgent_delay: float = 0.05,
        local_backend: bool = False,
    ) -> None:
        self.target = target
        self.settings = settings
        self.local_backend = local_backend
        self.client: EngineClient | None = None
        self.status: dict[str, Any] = {}
        self.started_here = False
        self.coalescer = Coalescer(target, interval=progress_interval, urgent=urgent_delay)
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Find or start the engine, follow it (the queue pane asks for its window)."""
        before = await asyncio.to_thread(_engine_running, self.settings)
        self.client = client = await connect(
            self.settings, "dashboard", local_backend=self.local_backend
        )
        self.started_here = not before
        client.on_event = self._on_wire
        self.coalescer.held = True
        self.status = await client.request(wire.Subscribe())
        if self.status.get("host"):
            self.settings.host = self.status["host"]
        totals = self.status.get("totals")
        if totals:
            self._on_wire(totals)
        self.coalescer.held = False
        self.coalescer.start(asyncio.get_running_loop())
        self.coalescer.flush()
        self.coalescer.post(EngineStarted(0))

    @property
    def running(self) -> bool:
        return self.client is not None and not self.client.closed.is_set()

    async def aclose(self) -> None:
        """Leave the engine running: only this client goes."""
        self.coalescer.stop()
        client, self.client = self.client, None
        if client is not None:
            await client.close()

    def stop(self, timeout: float = 30.0) -> None:
        """From another thread or at exit: close the socket (the engine goes on)."""
        client = self.client
        if client is not None:
            with contextlib.suppress(Exception):
                client.writer.transport.abort()

    # -- events -----------------------------------------------------------------------------

    def _on_wire(self, obj: dict[str, Any]) -> None:
        try:
            event = wire.event_from_wire(obj)
        except wire.WireError:
            log.debug("bad event from the engine", exc_info=True)
            return
        if event is not None:
            self.coalescer.take(event)

    # -- calls ------------------------------------------------------------------------------

    def _send(self, command: wire.Command) -> None:
        task = asyncio.ensure_future(self._request(command))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _request(self, command: wire.Command) -> dict[str, Any] | None:
        if self.client is None:
            return None
        try:
            return await self.client.request(command)
        except Refused as exc:
            self.coalescer.post(EngineError(str(exc)))
        except Exception as exc:
            self.coalescer.post(EngineError(f"engine: {type(exc).__name__}: {exc}"))
        return None

    def queue_paths(
        self, paths: Sequence[bytes], force: bool = False, plan: CollectionPlan | None = None
    ) -> None:
        add = wire.Add(paths=[os.fsdecode(absolute(p)) for p in paths], force=force)
        add.follow = False  # its events reach this client as a subscriber
        if plan is not None:
            add.collection = plan.collection.id
            add.spec = plan.spec
            add.group_by_stem = plan.group_by_stem
            add.spec_map = ",".join(f"{k}={v}" for k, v in plan.spec_map.items())
            add.meta = [f"{k}={v}" for k, v in plan.meta.items()]
        self._send(add)

    def pause(self, job_id: int) -> None:
        self._send(wire.Control("pause", job=job_id))

    def resume(self, job_id: int) -> None:
        self._send(wire.Control("resume", job=job_id))

    def pause_all(self) -> None:
        self._send(wire.Control("pause"))

    async def pause_everything(self) -> None:
        """Pause every job and wait for the engine's answer (quitting with "pause")."""
        await self._request(wire.Control("pause"))

    def resume_all(self) -> None:
        self._send(wire.Control("resume"))

    def cancel(self, job_id: int) -> None:
        self._send(wire.Control("cancel", job=job_id))

    def retry_failed(self) -> None:
        self._send(wire.Control("retry"))

    def drain(self) -> None:
        self._send(wire.Control("drain"))

    def undrain(self) -> None:
        self._send(wire.Control("undrain"))

    def set_concurrency(self, n: int) -> None:
        self._send(wire.Set(concurrency=n))

    def set_bwlimit(self, rate: float | None) -> None:
        self._send(wire.Set(bwlimit=rate or 0))

    def resume_journal(self) -> None:
        """Queue the journal's unfinished jobs, as the dashboard does at launch."""
        self._send(wire.Resume(follow=False, keep_paused=True))

    async def configure(self, settings: Settings) -> bool:
        """New backend settings from the settings screen: the only time a token crosses.
        False when the engine refused them (it keeps what it had: see `engine_status`)."""
        c = settings.credentials
        answer = await self._request(
            wire.Configure(
                settings.host,
                c.access_token,
                c.user_token,
                c.tenant,
                settings.insecure,
                settings.ca_bundle or "",  # "": none (None would keep the engine's)
            )
        )
        if answer is None:
            return False
        self.status = answer
        return True

    # -- queries ----------------------------------------------------------------------------

    async def job_details(self, job_id: int) -> JobDetails | None:
        answer = await self._request(wire.JobInfo(job=job_id))
        job = (answer or {}).get("job")
        if not job:
            return None
        job["errors"] = [(float(t), str(m)) for t, m in job.get("errors") or []]
        return JobDetails(**job)

    async def window(self, ask: Ask) -> QueueWindow:
        """The queue pane's window, read by the engine by index (the `list` command);
        raises when the engine does not answer."""
        known_id, known_index = ask.known if ask.known is not None else (None, None)
        command = wire.ListJobs(
            offset=ask.offset,
            limit=ask.limit,
            state=ask.state,
            scope="engine",
            at=ask.at,
            follow=ask.follow,
            before=ask.before,
            known_id=known_id,
            known_index=known_index,
        )
        if self.client is None:
            raise ConnectionError("not attached to the engine")
        answer = await self.client.request(command)  # raises: the pane keeps what it has
        rows = [
            WindowRow(
                r["id"], r["path"], r["size"], r["state"], r["sent"], r["attempts"], r["last_error"]
            )
            for r in answer.get("jobs") or []
        ]
        anchor = answer.get("anchor")
        return QueueWindow(
            int(answer.get("offset", 0)),
            int(answer.get("total", 0)),
            rows,
            anchor if isinstance(anchor, int) else None,
            {str(k): int(v) for k, v in (answer.get("counts") or {}).items()},
        )

    async def collections(self) -> list[Collection]:
        assert self.client is not None
        try:
            answer = await self.client.request(wire.Collections())
        except Refused as exc:
            if exc.kind == "gone":
                raise UploadGone(str(exc), status=404) from None
            from synapse_tui.engine.errors import SynapseError

            raise SynapseError(str(exc)) from None
        return [
            Collection(int(c["id"]), str(c["name"]), tuple(c["specs"]))
            for c in answer["collections"]
        ]

    async def uploaded_paths(self, paths: Sequence[bytes]) -> set[bytes]:
        """Which of `paths` were uploaded to this backend (the ledger, by index)."""
        path = self.settings.state_dir / Journal.FILENAME
        return await asyncio.to_thread(uploaded_paths, path, self.settings.host or "", paths)

    async def busy(self) -> bool:
        """True while a job runs or waits to run (quitting could mean pausing it)."""
        answer = await self._request(wire.Status())
        return answer is not None and not answer.get("idle", True)

    async def engine_status(self) -> dict[str, Any]:
        return await self._request(wire.Status()) or {}


def _engine_running(settings: Settings) -> bool:
    from synapse_tui.service.spawn import socket_answers

    return socket_answers(settings.state_dir)
