"""The bridge: engine in its own thread, progress coalesced, calls scheduled thread-safely."""

from __future__ import annotations

import os
import stat
import threading
import time
from typing import Any

import pytest

from synapse_tui import paths
from synapse_tui.config import Settings
from synapse_tui.engine.events import JobProgress, JobState, JobStateChanged, LogMessage
from synapse_tui.ui.bridge import EngineBridge
from synapse_tui.ui.local_backend import local_token, saved_port, start_local_backend
from synapse_tui.ui.messages import EngineStarted, EngineUpdate


class FakeJob:
    def __init__(self, job_id: int) -> None:
        self.id = job_id
        self.state = JobState.UPLOADING
        self.sent = 0
        self.size = 100
        self.attempts = 1
        self.last_error = None


class FakeManager:
    def __init__(self, listeners: list[Any]) -> None:
        self.listeners = listeners
        self.jobs = {1: FakeJob(1)}
        self.thread: threading.Thread | None = None
        self.paused: list[int] = []
        self.closed = False

    def start(self) -> None:
        self.thread = threading.current_thread()

    def resume_unfinished(self) -> int:
        return 3

    def get(self, job_id: int) -> FakeJob | None:
        return self.jobs.get(job_id)

    def emit(self, event: Any) -> None:
        for listener in self.listeners:
            listener(event)

    def pause(self, job_id: int) -> None:
        assert threading.current_thread() is self.thread
        self.paused.append(job_id)

    async def close(self, message: str = "") -> None:
        self.closed = True

    class journal:
        @staticmethod
        def close() -> None: ...

        @staticmethod
        async def settled() -> None: ...


class Sink:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    def post_message(self, message: Any) -> bool:
        self.messages.append(message)
        return True


def test_progress_is_coalesced_and_order_kept() -> None:
    sink = Sink()
    holder: dict[str, FakeManager] = {}

    def factory(settings: Settings, listeners: list[Any]) -> FakeManager:
        holder["m"] = FakeManager(listeners)
        return holder["m"]

    bridge = EngineBridge(sink, Settings(host="http://x"), factory=factory, progress_interval=0.2)
    bridge.start()
    manager = holder["m"]
    assert manager.thread is not threading.current_thread()

    def burst() -> None:
        for n in range(1000):
            manager.emit(JobProgress(1, n, 1000, 1.0, None))
        manager.emit(JobStateChanged(1, JobState.PAUSED, "paused"))
        manager.emit(LogMessage("info", "hello"))

    assert bridge.loop is not None
    bridge.loop.call_soon_threadsafe(burst)
    bridge.pause(1)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        updates = [m for m in sink.messages if isinstance(m, EngineUpdate)]
        if updates:
            break
        time.sleep(0.02)
    time.sleep(0.3)
    bridge.stop()
    assert isinstance(sink.messages[0], EngineStarted) and sink.messages[0].resumed == 3
    updates = [m for m in sink.messages if isinstance(m, EngineUpdate)]
    events = [e for u in updates for e in u.events]
    progress = [e for e in events if isinstance(e, JobProgress)]
    assert len(progress) == 1 and progress[0].sent == 999  # only the latest survives
    assert len(updates) <= 2
    kinds = [type(e).__name__ for e in events]
    assert kinds.index("JobProgress") < kinds.index("JobStateChanged") < kinds.index("LogMessage")
    assert updates[0].views[1].attempts == 1
    assert manager.paused == [1]
    assert manager.closed


def test_local_backend_token_and_stable_port() -> None:
    folder = paths.data_dir()
    token = local_token(folder)
    assert token == local_token(folder)
    assert stat.S_IMODE(os.stat(folder / "local-token").st_mode) == 0o600
    server, url, token2 = start_local_backend(folder)
    try:
        assert token2 == token
        assert url.startswith("http://127.0.0.1:")
        port = int(url.rsplit(":", 1)[1])
        assert port == saved_port(folder)
    finally:
        server.stop()
    server, url2, _ = start_local_backend(folder)  # the same URL next launch
    try:
        assert url2 == url
    finally:
        server.stop()


async def test_local_banner(app_factory: Any) -> None:
    app = app_factory(local=True, start_engine=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        banner = str(app.dashboard.query_one("#banner").render())
        assert "LOCAL backend" in banner and "uploads stay on this machine" in banner


def test_run_dashboard_refuses_a_missing_folder(tmp_path: Any) -> None:
    import pytest

    from synapse_tui.engine.errors import ConfigError
    from synapse_tui.ui.app import run_dashboard

    with pytest.raises(ConfigError, match="not a folder"):
        run_dashboard(Settings(host="http://x"), str(tmp_path / "missing"))


async def test_an_unreachable_backend_is_reported_at_launch(
    app_factory: Any, tmp_path: Any
) -> None:
    from synapse_tui.engine.credentials import Credentials
    from tests.ui.conftest import wait_for

    settings = Settings(
        host="http://127.0.0.1:1",
        credentials=Credentials(access_token="tok-never-shown-1234"),
        state_dir=tmp_path / "state",
    )
    app = app_factory(settings=settings)
    async with app.run_test(size=(120, 40)) as pilot:
        log = app.dashboard.log_widget
        await wait_for(pilot, lambda: any("cannot connect" in line for line in log.lines_written))
        line = next(line for line in log.lines_written if "cannot connect" in line)
        assert "http://127.0.0.1:1" in line
        assert "tok-never-shown-1234" not in "".join(log.lines_written)
        await app.shutdown_engine()


_PRIORITY_PROBE = """
import json, os, threading
from synapse_tui.config import Settings
from synapse_tui.engine.hashing import io_executor
from synapse_tui.ui.bridge import EngineBridge
from tests.ui.test_bridge import FakeManager, Sink

def level() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

seen = {"main": level()}

def factory(settings, listeners):
    seen["engine"] = level()
    seen["io"] = io_executor().submit(level).result()  # a pool thread started by the engine
    return FakeManager(listeners)

bridge = EngineBridge(Sink(), Settings(host="http://x", upload_nice=NICE), factory=factory)
bridge.start()
bridge.stop()
seen["main_after"] = level()
print(json.dumps(seen))
"""


def _priorities(nice: int) -> dict[str, int]:
    import json
    import subprocess
    import sys
    from pathlib import Path

    code = _PRIORITY_PROBE.replace("NICE", str(nice))
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.skipif(not hasattr(os, "setpriority"), reason="no per-thread priorities here")
def test_upload_threads_run_below_the_ui_thread() -> None:
    """The engine thread and the read/hash pool yield the CPU to the UI when it is short."""
    seen = _priorities(10)
    base = seen["main"]
    assert seen["main_after"] == base  # the UI thread keeps its level
    assert seen["engine"] == seen["io"] == min(19, base + 10)
    off = _priorities(0)
    assert off["engine"] == off["io"] == off["main"]


def test_upload_nice_setting() -> None:
    from synapse_tui.config import load_settings
    from synapse_tui.engine.errors import ConfigError

    assert load_settings(env={}).upload_nice == 10
    assert load_settings(env={"SYNAPSE_TUI_UPLOAD_NICE": "0"}).upload_nice == 0
    with pytest.raises(ConfigError, match="upload_nice must be between 0 and 19"):
        load_settings(env={"SYNAPSE_TUI_UPLOAD_NICE": "25"})
    with pytest.raises(ConfigError):
        load_settings(env={"SYNAPSE_TUI_UPLOAD_NICE": "high"})
