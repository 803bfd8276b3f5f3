"""A front end's side of the engine: find or start it (race-free), then ask and listen."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import itertools
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from synapse_tui import paths
from synapse_tui.config import Settings
from synapse_tui.service.commands import LOG_LIMIT, LOG_NAME
from synapse_tui.service.wire import (
    MAX_LINE,
    SOCKET_NAME,
    Command,
    Hello,
    WireError,
    decode,
    encode,
)

START_LOCK = "engine.start.lock"
IDLE_ENV = "SYNAPSE_TUI_ENGINE_IDLE"  # seconds an engine a dashboard used stays idle
CLIENT_TIMEOUT_ENV = "SYNAPSE_TUI_ENGINE_CLIENT_TIMEOUT"  # a client not reading: dropped
FOREGROUND_ENV = "SYNAPSE_TUI_FOREGROUND"
START_TIMEOUT = 30.0


class EngineUnavailable(Exception):
    """No engine answers (and none was to be started, or it could not start)."""


class Refused(Exception):
    """The engine refused a command; `kind` "config" is a user error (exit 2)."""

    def __init__(self, error: str, kind: str) -> None:
        super().__init__(error)
        self.kind = kind


def foreground_requested() -> bool:
    return os.environ.get(FOREGROUND_ENV, "") not in ("", "0")


class EngineClient:
    """One connection. Replies resolve `request`'s futures; events go to `on_event`."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.on_event: Callable[[dict[str, Any]], None] = lambda obj: None
        self.status: dict[str, Any] = {}
        self.closed = asyncio.Event()
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._task = asyncio.create_task(self._read_loop(), name="engine-client")

    async def _read_loop(self) -> None:
        try:
            while True:
                line = await self.reader.readline()
                if not line:
                    break
                obj = decode(line)
                if "reply" in obj:
                    future = self._waiting.pop(obj["reply"], None)
                    if future is not None and not future.done():
                        future.set_result(obj)
                else:
                    self.on_event(obj)
        except (ConnectionError, OSError, ValueError, WireError, asyncio.LimitOverrunError):
            pass
        finally:
            self.closed.set()
            for future in self._waiting.values():
                if not future.done():
                    future.set_exception(EngineUnavailable("the engine closed the connection"))
            self._waiting.clear()

    async def request(self, command: Command, timeout: float | None = 60.0) -> dict[str, Any]:
        if self.closed.is_set():
            raise EngineUnavailable("the engine closed the connection")
        request_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        self.writer.write(encode(command.to_wire(request_id)))
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.drain()
        answer = await asyncio.wait_for(future, timeout)
        if not answer.get("ok"):
            raise Refused(str(answer.get("error")), str(answer.get("kind", "error")))
        return answer

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.writer.wait_closed(), 2.0)
        self._task.cancel()
        with contextlib.suppress(BaseException):
            await self._task


async def _open(state: Path, role: str) -> EngineClient:
    reader, writer = await asyncio.open_unix_connection(
        str(state / SOCKET_NAME), limit=MAX_LINE + 1024
    )
    client = EngineClient(reader, writer)
    try:
        client.status = await client.request(Hello(role=role), timeout=10.0)
    except BaseException:
        await client.close()
        raise
    return client


async def connect(
    settings: Settings,
    role: str,
    *,
    start: bool = True,
    local_backend: bool = False,
) -> EngineClient:
    """The engine of `settings.state_dir`, started when none runs (and `start`)."""
    state = Path(settings.state_dir)
    for _attempt in range(3):
        try:
            return await _open(state, role)
        except (FileNotFoundError, ConnectionRefusedError, EngineUnavailable, TimeoutError):
            pass  # none yet, a stale socket, or one that was just leaving
        if not start:
            raise EngineUnavailable(f"no engine runs for {state}")
        await asyncio.to_thread(start_engine, settings, local_backend)
    raise EngineUnavailable(f"the engine for {state} does not answer (see {state / LOG_NAME})")


def socket_answers(state: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.connect(str(state / SOCKET_NAME))
        except OSError:
            return False
    return True


def engine_alive(state: Path) -> bool:
    """Whether a live engine holds the engine lock (starting, serving or stopping)."""
    from synapse_tui.service.__main__ import ENGINE_LOCK

    try:
        fd = os.open(state / ENGINE_LOCK, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def start_engine(settings: Settings, local_backend: bool = False) -> None:
    """Start the engine unless another front end did meanwhile: under the start lock,
    only one front end at a time looks and starts, so two at once get one engine."""
    from synapse_tui.service.__main__ import SETTINGS_ENV, settings_to_env

    state = paths.private_dir(Path(settings.state_dir))
    fd = os.open(state / START_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        _lock(fd, START_TIMEOUT)
        if socket_answers(state):
            return
        log_path = state / LOG_NAME
        with contextlib.suppress(OSError):
            if log_path.stat().st_size > LOG_LIMIT:
                os.replace(log_path, log_path.with_name(LOG_NAME + ".1"))
        argv = [sys.executable, "-m", "synapse_tui.service", "--state-dir", str(state)]
        argv += ["--idle-timeout", os.environ.get(IDLE_ENV, "300")]
        argv += ["--client-timeout", os.environ.get(CLIENT_TIMEOUT_ENV, "20")]
        if local_backend:
            argv.append("--local-backend")
        env = dict(os.environ)
        env[SETTINGS_ENV] = settings_to_env(settings)
        log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            child = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log_fd,
                stderr=log_fd,
                env=env,
                cwd="/",
                start_new_session=True,  # no terminal, no SIGHUP, no Ctrl-C of ours
                close_fds=True,
            )
        finally:
            os.close(log_fd)
        deadline = time.monotonic() + START_TIMEOUT
        while not socket_answers(state):
            code = child.poll()
            if code is not None and code != 3:  # 3: another engine took the lock first
                raise EngineUnavailable(f"the engine did not start (see {log_path})")
            if time.monotonic() > deadline:
                raise EngineUnavailable(f"the engine did not start in time (see {log_path})")
            time.sleep(0.02)
    finally:
        os.close(fd)  # releases the start lock


def _lock(fd: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise EngineUnavailable("another front end is starting the engine") from None
            time.sleep(0.02)
