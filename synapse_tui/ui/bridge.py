"""The one door between the dashboard and the engine.

The engine (UploadManager) runs in its own thread with its own asyncio loop, so eight
uploads pushing hundreds of MB/s never compete with key presses for the UI loop. Calls go
in with `call_soon_threadsafe` / `run_coroutine_threadsafe`; events come out as Textual
messages posted with `post_message` (thread-safe). Progress is coalesced here: only the
latest JobProgress per job and the latest TotalProgress/ScanProgress survive, flushed at
most `progress_interval` apart; everything else within `urgent_delay` (ui/coalesce.py).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from synapse_tui.config import Settings
from synapse_tui.engine import queue_view
from synapse_tui.engine.collections import Collection, CollectionPlan, list_collections
from synapse_tui.engine.hashing import lower_this_thread, set_worker_nice
from synapse_tui.ui.coalesce import Coalescer, Poster
from synapse_tui.ui.messages import (
    EngineError,
    EngineStarted,
    JobDetails,
    JobView,
    QueueWindow,
    WindowRow,
)

log = logging.getLogger("synapse_tui.ui")
T = TypeVar("T")


if TYPE_CHECKING:  # the scheduler loads when the engine starts, not with the dashboard
    from synapse_tui.engine.events import Listener
    from synapse_tui.engine.scheduler import UploadManager

# The tests' seam: a fake manager may stand in (default_factory below is the real, typed one).
ManagerFactory = Callable[[Settings, list[Any]], Any]


def default_factory(settings: Settings, listeners: list[Listener]) -> UploadManager:
    from synapse_tui.engine.factory import make_manager

    return make_manager(settings, listeners)


class EngineBridge:
    """Runs an UploadManager in a daemon thread and relays its events to `target`."""

    def __init__(
        self,
        target: Poster,
        settings: Settings,
        *,
        factory: ManagerFactory = default_factory,
        progress_interval: float = 0.25,
        urgent_delay: float = 0.05,
        resume: bool = True,
    ) -> None:
        self.target = target
        self.settings = settings
        self.factory = factory
        self.resume_on_start = resume
        self.manager: Any = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        # engine-thread only: the pending batch
        self.coalescer = Coalescer(
            target, interval=progress_interval, urgent=urgent_delay, views=self._views
        )
        self._preflight_task: asyncio.Task[None] | None = None

    # -- lifecycle (UI thread) -------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> None:
        """Start the engine thread; raises what building the manager raised."""
        set_worker_nice(self.settings.upload_nice)
        self._thread = threading.Thread(target=self._run, name="synapse-engine", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("the engine did not start")
        if self._error is not None:
            raise self._error

    @property
    def running(self) -> bool:
        return self.loop is not None and self.loop.is_running()

    @property
    def stopped(self) -> bool:
        """The engine stopped for good (a fatal error: a refused token...): a new bridge,
        with new settings, is the way to upload again."""
        return getattr(self.manager, "stopped", None) is not None or not self.running

    def stop(self, timeout: float = 30.0) -> None:
        """Close the manager (in-flight jobs become paused, resumable) and join the thread."""
        loop = self.loop
        if loop is None or not loop.is_running():
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout)

    # -- the engine thread -----------------------------------------------------------------

    def _run(self) -> None:
        lower_this_thread()
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            self.manager = self.factory(self.settings, [self.coalescer.take])
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self.loop = loop
        loop.call_soon(self._started)
        try:
            loop.run_forever()
        finally:
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def _started(self) -> None:
        self.manager.start()
        resumed = self.manager.resume_unfinished() if self.resume_on_start else 0
        loop = asyncio.get_running_loop()
        self.coalescer.start(loop)
        self._ready.set()
        self.coalescer.post(EngineStarted(resumed))
        # Not in self._tasks: a check of the backend is no reason to ask before quitting.
        self._preflight_task = loop.create_task(self._preflight())

    async def _preflight(self) -> None:
        """Say at once when the backend is unreachable or refuses the token, as the CLI does,
        instead of letting the first queued file find out through its retries."""
        from synapse_tui.engine.errors import SynapseError

        try:
            await self.manager.client.ping()
        except SynapseError as exc:
            self.coalescer.post(EngineError(f"backend {self.settings.host}: {exc}"))

    async def _shutdown(self) -> None:
        for task in [*self._tasks, self._preflight_task]:
            if task is not None:
                task.cancel()
        with contextlib.suppress(Exception):
            await self.manager.close("paused: the dashboard closed")
        self.coalescer.stop()
        self.coalescer.flush()
        with contextlib.suppress(Exception):
            self.manager.journal.close()

    def _views(self, touched: set[int]) -> dict[int, JobView]:
        views: dict[int, JobView] = {}
        m = self.manager
        for job_id in touched:
            # In memory; else its journal row once finished, read only when that waits for
            # nothing (on the engine's loop): otherwise its events say what changed.
            job = m.jobs.get(job_id)
            if job is None and m.journal.caught_up():
                job = m.get(job_id)
            if job is not None:
                views[job_id] = JobView(
                    job_id, job.state.value, job.sent, job.size, job.attempts, job.last_error
                )
        return views

    # -- calls into the engine (any thread) -----------------------------------------------

    def _call(self, fn: Callable[..., Any], *args: Any) -> None:
        if self.loop is not None:
            asyncio.run_coroutine_threadsafe(self._guarded(fn, *args), self.loop)

    async def _guarded(self, fn: Callable[..., Any], *args: Any) -> None:
        """`fn` once the journal has the engine's writes: its reads wait for nothing."""
        try:
            await self.manager.journal.settled()
            fn(*args)
        except Exception as exc:
            log.exception("engine call failed")
            self.coalescer.post(EngineError(f"{type(exc).__name__}: {exc}"))

    def _submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        assert self.loop is not None, "the engine is not running"
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    async def ask(self, fn: Callable[[], T]) -> T:
        """Run `fn` in the engine thread and await its result from the UI loop; its reads
        of the journal wait for nothing there (the engine's loop goes on meanwhile)."""

        async def run() -> T:
            await self.manager.journal.settled()
            return fn()

        return await asyncio.wrap_future(self._submit(run()))

    def queue_paths(
        self, paths: Sequence[bytes], force: bool = False, plan: CollectionPlan | None = None
    ) -> None:
        """Scan and queue `paths` (a task in the engine loop; returns at once); with `plan`,
        each upload is then registered in its data collection."""

        async def add() -> None:
            task = asyncio.current_task()
            assert task is not None
            self._tasks.add(task)
            try:
                await self.manager.add_paths(list(paths), force=force, plan=plan)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("queueing failed")
                self.coalescer.post(EngineError(f"queueing failed: {exc}"))
            finally:
                self._tasks.discard(task)

        if self.loop is not None:
            self._submit(add())

    def pause(self, job_id: int) -> None:
        self._call(lambda: self.manager.pause(job_id))

    def resume(self, job_id: int) -> None:
        self._call(lambda: self.manager.resume(job_id))

    def pause_all(self) -> None:
        self._call(lambda: self.manager.pause_all())

    def resume_all(self) -> None:
        self._call(lambda: self.manager.resume_all())

    def cancel(self, job_id: int) -> None:
        self._call(lambda: self.manager.cancel(job_id))

    def retry_failed(self) -> None:
        self._call(lambda: self.manager.retry_failed())

    def drain(self) -> None:
        self._call(lambda: self.manager.drain())

    def undrain(self) -> None:
        self._call(lambda: self.manager.undrain())

    def set_concurrency(self, n: int) -> None:
        if self.loop is not None:
            self._submit(self.manager.set_concurrency(n))

    def set_bwlimit(self, rate: float | None) -> None:
        self._call(lambda: self.manager.set_bwlimit(rate))

    # -- queries (awaitable from the UI loop) ---------------------------------------------

    async def job_details(self, job_id: int) -> JobDetails | None:
        def gather() -> JobDetails | None:
            job = self.manager.get(job_id)
            if job is None:
                return None
            return JobDetails(
                job_id=job.id,
                path=job.display,
                size=job.size,
                state=job.state.value,
                upload_id=job.upload_id,
                upload_url=job.upload_url,
                offset=job.offset,
                sent=job.sent,
                md5=job.md5,
                attempts=job.attempts,
                resumed_from=job.resumed_from,
                last_error=job.last_error,
                errors=self.manager.journal.errors(job_id),
                collection=job.steps.collection,
                spec=job.steps.spec,
                data_file_id=job.steps.data_file_id,
                unit_id=job.steps.unit_id,
            )

        return await self.ask(gather)

    async def window(self, ask: queue_view.Ask) -> QueueWindow:
        """The queue pane's window, read in the engine thread (by index: its length)."""

        def read() -> QueueWindow:
            answer = queue_view.window(self.manager, ask)
            rows = [
                WindowRow(j.id, j.display, j.size, j.state.value, j.sent, j.attempts, j.last_error)
                for j in answer.jobs
            ]
            counts = {s.value: n for s, n in self.manager.counters.count.items()}
            return QueueWindow(answer.offset, answer.total, rows, answer.anchor, counts)

        return await self.ask(read)

    async def collections(self) -> list[Collection]:
        """The backend's data collections, asked for in the engine thread.

        Raises the engine's errors: UploadGone (status 404) when the backend has none.
        """
        return await asyncio.wrap_future(self._submit(list_collections(self.manager.client)))

    async def uploaded_paths(self, paths: Sequence[bytes]) -> set[bytes]:
        """Which of `paths` were uploaded to this backend (the ledger, by index)."""
        host = self.settings.host or ""
        return await self.ask(lambda: self.manager.journal.uploaded_among(host, paths))

    async def busy(self) -> bool:
        """True while a job runs or waits to run (quitting would interrupt it)."""

        def check() -> bool:
            m = self.manager
            if m.active() or self._tasks:
                return True
            return not m.draining and m.totals().counts.get("queued", 0) > 0

        return await self.ask(check)
