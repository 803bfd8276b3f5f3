"""A front end's connection to the engine: find or start it (spawn.py), then ask and listen."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from synapse_tui.config import Settings
from synapse_tui.service.peer import same_user
from synapse_tui.service.spawn import (
    LOG_NAME,
    SOCKET_NAME,
    EngineUnavailable,
    SocketPathTooLong,
    UnsafeStateFile,
    check_socket_path,
    foreground_requested,
    socket_address,
    start_engine,
)
from synapse_tui.service.wire import MAX_LINE, Command, Hello, WireError, decode, encode

__all__ = [
    "EngineClient",
    "EngineUnavailable",
    "ForeignEngine",
    "Refused",
    "connect",
    "foreground_requested",
]


class ForeignEngine(EngineUnavailable):
    """The socket's listener is another user's process (SO_PEERCRED): never spoken to."""


class Refused(Exception):
    """The engine refused a command; `kind` "config" is a user error (exit 2)."""

    def __init__(self, error: str, kind: str) -> None:
        super().__init__(error)
        self.kind = kind


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
    check_socket_path(state / SOCKET_NAME)
    with socket_address(state) as address:  # a deep state folder: a short alias
        reader, writer = await asyncio.open_unix_connection(address, limit=MAX_LINE + 1024)
    if not same_user(writer):  # checked before a byte goes: a Configure carries the token
        writer.transport.abort()
        raise ForeignEngine(
            f"the engine socket in {state} belongs to another user; not used "
            "(give a --state-dir of your own)"
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
        except (ForeignEngine, UnsafeStateFile, SocketPathTooLong):
            raise  # starting one would not help: its socket cannot replace that one
        except (FileNotFoundError, ConnectionRefusedError, EngineUnavailable, TimeoutError):
            pass  # none yet, a stale socket, or one that was just leaving
        if not start:
            raise EngineUnavailable(f"no engine runs for {state}")
        await asyncio.to_thread(start_engine, settings, local_backend)
    raise EngineUnavailable(f"the engine for {state} does not answer (see {state / LOG_NAME})")
