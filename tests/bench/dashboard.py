"""Case 6 plumbing: the dashboard under load, in-process (Pilot) and on a real pty.

- `key_latencies`: the app in this process under `App.run_test` (headless), the server in
  another process. Keys go on a fixed schedule, one every 100 ms (j, k, j, ...); a key's
  latency runs from its scheduled time (so an event loop busy at that moment counts) until
  the first frame the screen composes (`App._display` called with a compositor update,
  i.e. the frame handed to the driver) while the browser's `cursor_line` already holds the
  expected new line. Nothing forces the frame (no `pilot.pause()` in the timed part): the
  app's own refresh timer decides when it paints. Keys are sent as `pilot.press` sends
  them (a `Key` event to the driver) but without its waits: `pilot.press` then waits for
  CPU idle and for every widget's queue to drain, which under load takes seconds and would
  hold back the schedule (and count the harness's own waiting as latency).
- `pty_run`: `synapse-tui DIR` (the real entry point) on a pty of 120x40, keys written to
  the master side, every byte the app writes counted with its arrival time; done when the
  journal (read-only) holds the expected jobs (8, or 6d's 2,000 small files), all 'done'.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import math
import os
import pty
import select
import signal
import sqlite3
import struct
import sys
import termios
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from textual import events

from tests.bench.support import REPO_ROOT, Backend, client_env

COLS, ROWS = 120, 40
INTERVAL = 0.1  # 6a: one key every 100 ms on a fixed schedule, like a held-down key


# -- journal -----------------------------------------------------------------------------------


def journal_states(state: Path) -> list[str]:
    db = state / "journal.sqlite3"
    if not db.exists():
        return []
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            return [r[0] for r in con.execute("SELECT state FROM jobs")]
        finally:
            con.close()
    except sqlite3.Error:
        return []


def all_done(state: Path, count: int) -> bool:
    """The journal holds `count` jobs, all done: two counts, not a row per job (6d polls
    2,000 jobs every 20 ms beside the dashboard it measures)."""
    db = state / "journal.sqlite3"
    if not db.exists():
        return False
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            jobs, done = con.execute("SELECT COUNT(*), SUM(state = 'done') FROM jobs").fetchone()
        finally:
            con.close()
    except sqlite3.Error:
        return False
    return bool(jobs == count and done == count)


# -- 6a: key latency under Pilot ---------------------------------------------------------------


@contextlib.contextmanager
def isolated_dirs(base: Path):
    """SYNAPSE_TUI_{STATE,CONFIG,DATA}_DIR under `base` for the duration (this process)."""
    keys = ("SYNAPSE_TUI_STATE_DIR", "SYNAPSE_TUI_CONFIG_DIR", "SYNAPSE_TUI_DATA_DIR")
    old = {k: os.environ.get(k) for k in keys}
    for k in keys:
        d = base / k.split("_")[2].lower()
        d.mkdir(parents=True, exist_ok=True)
        os.environ[k] = str(d)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


async def _press_timed(app: Any, browser: Any, key: str, frames: list[Any], at: float) -> float:
    """Press `key` at `at` (perf_counter; late if the loop was busy) -> seconds to its frame."""
    expected = browser.cursor_line + (1 if key == "j" else -1)
    frames.clear()
    frames.append(expected)  # frames[0]: the line the wrapper waits for; then frame times
    await asyncio.sleep(max(0.0, at - time.perf_counter()))
    event = events.Key(key, key)  # what `pilot.press` sends for j/k, without its waits
    event.set_sender(app)
    app._driver.send_message(event)
    deadline = at + 5
    while len(frames) < 2:
        if time.perf_counter() > deadline:
            raise RuntimeError(f"no frame with cursor_line={expected} within 5 s of {key!r}")
        await asyncio.sleep(0.0005)
    return frames[1] - at


async def _latency_run(
    backend: Backend, folder: Path, state: Path, chunk: int, count: int, presses: int
) -> dict[str, Any]:
    from synapse_tui.config import Settings
    from synapse_tui.engine.protocol import Credentials
    from synapse_tui.ui.app import SynapseApp

    settings = Settings(
        host=backend.url,
        credentials=Credentials(access_token=backend.token),
        state_dir=state,
        chunk_size=chunk,
        concurrency=count,
    )
    from synapse_tui.service.spawn import foreground_requested

    service = not foreground_requested()  # the dashboard as users run it: the engine's client
    app = SynapseApp(settings, str(folder), service=service)
    frames: list[Any] = []
    original = app._display

    def display(screen: Any, renderable: Any) -> None:
        original(screen, renderable)
        line = app.dashboard.browser.cursor_line
        if renderable is not None and len(frames) == 1 and line == frames[0]:
            frames.append(time.perf_counter())

    app._display = display  # type: ignore[method-assign]

    busy: list[int] = []  # uploads running when each press started

    async def series(pilot: Any, browser: Any, under_load: bool) -> list[float]:
        """`presses` j/k presses; under load, stop early once an upload has ended."""
        out = []
        busy.clear()
        start = time.perf_counter() + INTERVAL
        for i in range(presses):
            now = counts()
            if under_load and (now.get("done", 0) or now.get("failed", 0)):
                break  # the load is over once the first upload ends
            key = "j" if i % 2 == 0 else "k"
            busy.append(now.get("uploading", 0))
            out.append(await _press_timed(app, browser, key, frames, start + i * INTERVAL))
        await pilot.pause()
        return out

    def counts() -> dict[str, int]:
        return app.dashboard.queue.counts()

    async def wait(pilot: Any, cond: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline:
                raise RuntimeError(f"dashboard: timed out waiting for {what} ({counts()})")
            await pilot.pause(0.05)

    async with app.run_test(size=(COLS, ROWS)) as pilot:
        browser = app.dashboard.browser
        await wait(pilot, lambda: len(browser.root.children) >= count, 30, "the listing")
        await pilot.pause(0.3)
        browser.cursor_line = 0
        await pilot.pause()
        idle = await series(pilot, browser, False)  # cursor ends where it started (even presses)
        browser.cursor_line = 0
        await pilot.pause()
        await pilot.press(*(["space"] * count))
        await pilot.press("u")
        await wait(pilot, lambda: counts().get("uploading") == count, 60, f"{count} uploading")
        browser.cursor_line = 0
        await pilot.pause()
        loaded = await series(pilot, browser, True)
        await app.shutdown_engine()
    if service:
        await asyncio.to_thread(stop_engine, state)
    return {"idle": idle, "loaded": loaded, "uploading": list(busy)}


def key_latencies(
    backend: Backend, folder: Path, work: Path, chunk: int, count: int, presses: int
) -> dict[str, Any]:
    with isolated_dirs(work):
        return asyncio.run(_latency_run(backend, folder, work / "journal", chunk, count, presses))


def p95(values: list[float]) -> float:
    """Nearest-rank 95th percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


# -- 6b/6c: the real dashboard on a pty --------------------------------------------------------


@dataclass
class PtyRun:
    seconds: float  # from writing `u` until the journal says all done
    out_bytes: int  # bytes the app wrote in that window
    total_bytes: int  # bytes over the whole session (start-up and quit included)
    chunks: list[tuple[float, int]] = field(default_factory=list, repr=False)

    @property
    def rate(self) -> float:
        return self.out_bytes / self.seconds


def pty_run(
    backend: Backend,
    folder: Path,
    work: Path,
    chunk: int,
    count: int,
    timeout: float = 900,
    *,
    concurrency: int | None = None,
    select_each: bool = True,
) -> PtyRun:
    """`count` jobs to wait for; `select_each`: space on each of the `count` files listed,
    then `u` (else `u` alone, on the first entry: a folder holding the files)."""
    state = work / "state"
    env = client_env(backend.url, backend.token, state)
    env.update(
        SYNAPSE_TUI_CONFIG_DIR=str(work / "config"),
        SYNAPSE_TUI_DATA_DIR=str(work / "data"),
        TERM="xterm-256color",
        COLUMNS=str(COLS),
        LINES=str(ROWS),
    )
    env.pop("TEXTUAL", None)
    argv = [
        sys.executable,
        "-m",
        "synapse_tui.cli",
        str(folder),
        "--concurrency",
        str(concurrency or count),
        "--chunk-size",
        f"{chunk // 1048576}M" if chunk % 1048576 == 0 else str(chunk),
    ]
    winsize = struct.pack("HHHH", ROWS, COLS, 0, 0)
    pid, master = pty.fork()
    if pid == 0:  # the child: the pty is its controlling terminal and stdio
        try:
            fcntl.ioctl(0, termios.TIOCSWINSZ, winsize)
            os.chdir(REPO_ROOT)
            os.execve(sys.executable, argv, env)
        finally:
            os._exit(127)
    fcntl.ioctl(master, termios.TIOCSWINSZ, winsize)
    chunks: list[tuple[float, int]] = []
    text = bytearray()  # the first bytes only, to see the listing and quit prompt
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            ready, _, _ = select.select([master], [], [], 0.1)
            if not ready:
                continue
            try:
                data = os.read(master, 65536)
            except OSError:
                return
            if not data:
                return
            chunks.append((time.perf_counter(), len(data)))
            if len(text) < 4_000_000:
                text.extend(data)

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        names = [p.name.encode() for p in sorted(folder.iterdir())]
        while not all(n in text for n in names):
            if time.monotonic() > deadline:
                raise RuntimeError(f"dashboard did not show the files: {bytes(text[-500:])!r}")
            time.sleep(0.05)
        time.sleep(1.0)  # let the start-up settle
        for _ in range(count if select_each else 0):
            os.write(master, b" ")
            time.sleep(0.1)
        time.sleep(0.3)
        started = time.perf_counter()
        os.write(master, b"u")
        deadline = time.monotonic() + timeout
        while not all_done(state, count):
            if time.monotonic() > deadline:
                raise RuntimeError(f"dashboard uploads not done: {journal_states(state)}")
            time.sleep(0.02)
        ended = time.perf_counter()
        window = sum(n for t, n in chunks if started <= t <= ended)
        os.write(master, b"q")
        time.sleep(0.5)
        os.write(master, b"y")  # only needed when it asks (uploads running); harmless otherwise
        waited = time.monotonic() + 10
        while time.monotonic() < waited:
            if os.waitpid(pid, os.WNOHANG) != (0, 0):
                pid = 0
                break
            time.sleep(0.05)
    finally:
        if pid:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
        stop.set()
        thread.join(5)
        with contextlib.suppress(OSError):
            os.close(master)
    stop_engine(state, env)
    total = sum(n for _, n in chunks)
    return PtyRun(ended - started, window, total, chunks)


def stop_engine(state: Path, env: dict[str, str] | None = None) -> None:
    """The background engine a dashboard started stays for its idle time: stop it."""
    import subprocess

    env = dict(env or os.environ, SYNAPSE_TUI_STATE_DIR=str(state))
    subprocess.run(
        [sys.executable, "-m", "synapse_tui.cli", "engine", "stop"],
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
