"""The dashboard's door to the background engine: the bridge's methods, over the socket.

It runs in the UI's own loop (socket reads are cheap; the engine coalesces progress per
client). Events are batched as EngineBridge batches them: progress latest-wins, flushed
every `progress_interval`, everything else within `urgent_delay` (or with the next
progress when an update went less than `progress_interval` ago).
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
from synapse_tui.engine.events import (
    Event,
    JobDone,
    JobProgress,
    JobQueued,
    JobState,
    JobStateChanged,
    ScanProgress,
    TotalProgress,
)
from synapse_tui.engine.journal import Journal
from synapse_tui.service import wire
from synapse_tui.service.client import EngineClient, Refused, connect
from synapse_tui.service.store import uploaded_paths
from synapse_tui.ui.bridge import Poster
from synapse_tui.ui.messages import EngineError, EngineStarted, EngineUpdate, JobDetails, JobView

log = logging.getLogger("synapse_tui.ui")
PAGE = 1000  # jobs per `list` answer while the queue is loaded at attach


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
        self.progress_interval = progress_interval
        self.urgent_delay = urgent_delay
        self.local_backend = local_backend
        self.client: EngineClient | None = None
        self.status: dict[str, Any] = {}
        self.started_here = False
        self._batch: list[Event] = []
        self._progress: dict[int, JobProgress] = {}
        self._total: TotalProgress | None = None
        self._scan: ScanProgress | None = None
        self._views: dict[int, JobView] = {}
        self._touched: set[int] = set()
        self._urgent: asyncio.TimerHandle | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._flushed = float("-inf")  # the loop's time of the last update posted
        self._loading = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self.posted = 0

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Find or start the engine, load what it holds, follow it."""
        before = await asyncio.to_thread(_engine_running, self.settings)
        self.client = client = await connect(
            self.settings, "dashboard", local_backend=self.local_backend
        )
        self.started_here = not before
        client.on_event = self._on_wire
        self._loading = True
        self.status = await client.request(wire.Subscribe())
        if self.status.get("host"):
            self.settings.host = self.status["host"]
        await self._load_queue()
        totals = self.status.get("totals")
        if totals:
            self._on_wire(totals)
        self._loading = False
        self._flusher = asyncio.create_task(self._flush_loop(), name="service-bridge-flush")
        self._flush()
        self._post(EngineStarted(0))

    async def _load_queue(self) -> None:
        """Every job the engine holds, a page at a time, as the queue's own events."""
        assert self.client is not None
        offset = 0
        loaded: list[Event] = []
        while True:
            page = await self.client.request(
                wire.ListJobs(offset=offset, limit=PAGE, scope="engine")
            )
            for row in page["jobs"]:
                loaded.append(JobQueued(row["id"], row["path"], row["size"]))
                self._views[row["id"]] = JobView(
                    row["id"],
                    row["state"],
                    row["sent"],
                    row["size"],
                    row["attempts"],
                    row["last_error"],
                )
                self._touched.add(row["id"])
            offset += len(page["jobs"])
            if not page["jobs"] or offset >= page["total"]:
                break
        self._batch[:0] = loaded  # before what arrived meanwhile

    @property
    def running(self) -> bool:
        return self.client is not None and not self.client.closed.is_set()

    async def aclose(self) -> None:
        """Leave the engine running: only this client goes."""
        if self._flusher is not None:
            self._flusher.cancel()
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
        if event is None:
            return
        if isinstance(event, JobProgress):
            self._progress[event.job_id] = event
            self._view(event.job_id, sent=event.sent, size=event.size)
            return
        if isinstance(event, TotalProgress):
            self._total = event
            return
        if isinstance(event, ScanProgress) and not event.done:
            self._scan = event
            return
        if isinstance(event, ScanProgress):
            self._scan = None
        if isinstance(event, JobQueued):
            self._view(event.job_id, state="queued", size=event.size)
        elif isinstance(event, JobStateChanged):
            error = event.message if event.state in (JobState.FAILED, JobState.PAUSED) else None
            self._view(event.job_id, state=event.state.value, error=error)
        elif isinstance(event, JobDone):
            self._view(event.job_id, state="done", sent=event.size)
        self._batch.append(event)
        if self._urgent is None and not self._loading:
            # A lone change is drawn within `urgent_delay`; a stream of them (small files
            # ending every few ms) at most every `progress_interval`, as progress is: a
            # frame per change repainted the queue 20 times a second (bench 6d).
            loop = asyncio.get_running_loop()
            wait = max(self.urgent_delay, self._flushed + self.progress_interval - loop.time())
            self._urgent = loop.call_later(wait, self._flush)

    def _view(
        self,
        job_id: int,
        *,
        state: str | None = None,
        sent: int | None = None,
        size: int | None = None,
        error: str | None = None,
    ) -> None:
        old = self._views.get(job_id) or JobView(job_id, "queued", 0, 0, 0, None)
        self._views[job_id] = JobView(
            job_id,
            state or old.state,
            old.sent if sent is None else sent,
            old.size if size is None else size,
            old.attempts,
            error if error is not None else old.last_error,
        )
        self._touched.add(job_id)

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.progress_interval)
            self._flush()

    def _flush(self) -> None:
        if self._urgent is not None:
            self._urgent.cancel()
            self._urgent = None
        events: list[Event] = list(self._progress.values())
        events.extend(self._batch)
        if self._scan is not None:
            events.append(self._scan)
        if self._total is not None:
            events.append(self._total)
        if not events and not self._touched:
            return
        views = {j: self._views[j] for j in self._touched if j in self._views}
        self._flushed = asyncio.get_running_loop().time()
        self._batch, self._progress, self._total, self._scan = [], {}, None, None
        self._touched = set()
        self._post(EngineUpdate(events, views))

    def _post(self, message: Any) -> None:
        self.posted += 1
        try:
            self.target.post_message(message)
        except Exception:
            log.debug("post failed", exc_info=True)

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
            self._post(EngineError(str(exc)))
        except Exception as exc:
            self._post(EngineError(f"engine: {type(exc).__name__}: {exc}"))
        return None

    def queue_paths(
        self, paths: Sequence[bytes], force: bool = False, plan: CollectionPlan | None = None
    ) -> None:
        add = wire.Add(paths=[os.fsdecode(os.path.abspath(p)) for p in paths], force=force)
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
                settings.ca_bundle,
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

    async def uploaded_paths(self) -> set[bytes]:
        path = self.settings.state_dir / Journal.FILENAME
        return await asyncio.to_thread(uploaded_paths, path, self.settings.host or "")

    async def busy(self) -> bool:
        """True while a job runs or waits to run (quitting could mean pausing it)."""
        answer = await self._request(wire.Status())
        return answer is not None and not answer.get("idle", True)

    async def engine_status(self) -> dict[str, Any]:
        return await self._request(wire.Status()) or {}


def _engine_running(settings: Settings) -> bool:
    from synapse_tui.service.spawn import socket_answers

    return socket_answers(settings.state_dir)
