"""Shared pieces of the fault tests: a timing proxy, an in-process engine run, server checks."""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import httpx

from synapse_tui.engine.events import (
    Event,
    FatalStop,
    JobDone,
    JobFailed,
    JobSkipped,
    JobState,
    LogMessage,
)
from synapse_tui.engine.journal import JobRecord, Journal
from synapse_tui.engine.names import upload_filename
from synapse_tui.engine.protocol import Credentials, ProtocolClient, Timeouts
from synapse_tui.engine.scheduler import EngineOptions, UploadManager
from tests.harness.proxy import FaultProxy, RequestRecord

CHUNK = 64 * 1024
# Multipart framing around one chunk (boundary lines, part headers, the filename field).
MULTIPART_OVERHEAD = 1024

FAST_OPTIONS: dict[str, Any] = {
    "chunk_size": CHUNK,
    "backoff_base": 0.01,
    "backoff_cap": 0.05,
    "stall_timeout": 1.0,
    "response_timeout": 2.0,
    "settle_delay": 0.05,
    "tick": 0.05,
    "retries": 8,
    "concurrency": 2,
}
FAST_TIMEOUTS = Timeouts(connect=3.0, read=5.0, write=5.0, pool=5.0, finalize_base=10.0)


def payload(size: int, seed: int = 0) -> bytes:
    """Deterministic pseudo-random bytes (a changed chunk changes the MD5)."""
    return random.Random(seed).randbytes(size)


def make_file(path: Path, size: int, seed: int = 0) -> Path:
    path.write_bytes(payload(size, seed))
    return path


class TimedProxy(FaultProxy):
    """The harness proxy plus arrival times, arrival hooks and a "held" PUT.

    ``arrivals[i]`` is the monotonic time ``requests[i]`` arrived. ``hooks`` run (in the
    proxy's loop, synchronously) for each request as it arrives: ``hook(method, path)``.
    ``hold_put(nth)`` makes the nth PUT reach the server minus its last body byte, which is
    only forwarded once ``release`` is set (by default: once a GET has been answered while
    the PUT was held) -- the server is "still writing" while the client has given up.
    """

    def __init__(self, host: str, port: int) -> None:
        super().__init__(host, port)
        self.arrivals: list[float] = []
        self.hooks: list[Callable[[str, str], None]] = []
        self._hold_nth: int | None = None
        self._stall_nth: int | None = None
        self._stall_after = 0
        self._puts = 0
        self.holding = asyncio.Event()
        self.release = asyncio.Event()
        self.release_on_get = True

    def stall_put_body(self, nth: int, after_bytes: int) -> None:
        """The nth PUT: stop reading its body after `after_bytes` (the client's writes
        block once the socket buffers fill), until the proxy stops."""
        self._stall_nth, self._stall_after = nth, after_bytes

    def hold_put(self, nth: int, *, release_on_get: bool = True) -> None:
        self._hold_nth = nth
        self.release_on_get = release_on_get

    def _choose_fault(self, method: str, path: str) -> Any:
        fault = super()._choose_fault(method, path)
        self.arrivals.append(time.monotonic())
        for hook in list(self.hooks):
            hook(method, path)
        return fault

    async def _one_request(self, conn_id: int, head: Any, *args: Any) -> Any:
        result = await super()._one_request(conn_id, head, *args)
        if head.start_line.startswith("GET ") and self.holding.is_set() and self.release_on_get:
            self.release.set()  # the client has read the state while the PUT was unfinished
        return result

    async def _forward_body(
        self,
        body: AsyncIterator[bytes],
        upstream: Any,
        record: RequestRecord,
        *,
        limit: int | None,
    ) -> None:
        if record.method == "PUT" and limit is None:
            self._puts += 1
            if self._stall_nth is not None and self._puts == self._stall_nth:
                async for piece in body:
                    piece = piece[: self._stall_after - record.body_forwarded]
                    upstream.writer.write(piece)
                    record.body_forwarded += len(piece)
                    if record.body_forwarded >= self._stall_after:
                        break
                await upstream.writer.drain()
                await asyncio.Event().wait()  # never: cancelled when the proxy stops
            if self._hold_nth is not None and self._puts == self._hold_nth:
                data = b"".join([piece async for piece in body])
                upstream.writer.write(data[:-1])
                await upstream.writer.drain()
                record.body_forwarded += len(data) - 1
                self.holding.set()
                await self.release.wait()
                upstream.writer.write(data[-1:])
                await upstream.writer.drain()
                record.body_forwarded += 1
                return
        await super()._forward_body(body, upstream, record, limit=limit)

    def puts(self) -> list[RequestRecord]:
        return [r for r in self.requests if r.method == "PUT"]


@dataclass
class Outcome:
    """What an in-process engine run emitted, and where its journal is."""

    events: list[Event]
    state_dir: Path
    elapsed: float
    manager: UploadManager | None = field(default=None, repr=False)

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    @property
    def done(self) -> list[JobDone]:
        return self.of(JobDone)

    @property
    def failed(self) -> list[JobFailed]:
        return self.of(JobFailed)

    @property
    def skipped(self) -> list[JobSkipped]:
        return self.of(JobSkipped)

    @property
    def fatal(self) -> list[FatalStop]:
        return self.of(FatalStop)

    def logs(self, level: str | None = None) -> list[str]:
        return [e.message for e in self.of(LogMessage) if level is None or e.level == level]

    def jobs(self) -> list[JobRecord]:
        journal = Journal(self.state_dir)
        try:
            return journal.jobs()
        finally:
            journal.close()

    def states(self) -> list[JobState]:
        return [j.state for j in self.jobs()]


def make_manager(
    host: str,
    token: str,
    state_dir: Path,
    events: list[Event],
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    timeouts: Timeouts = FAST_TIMEOUTS,
    **overrides: Any,
) -> UploadManager:
    """An UploadManager like the CLI's, with fast test timings (see FAST_OPTIONS)."""
    known = {f.name for f in fields(EngineOptions)}
    opts = {**FAST_OPTIONS, **overrides}
    unknown = set(opts) - known
    assert not unknown, f"not EngineOptions fields: {unknown}"
    client = ProtocolClient(
        host,
        Credentials(access_token=token),
        timeouts=timeouts,
        transport=transport,
        max_connections=16,
    )
    return UploadManager(
        client, Journal(state_dir), EngineOptions(host=host, **opts), [events.append]
    )


async def run_engine(
    host: str,
    token: str,
    paths: Sequence[os.PathLike[str] | str | bytes],
    state_dir: Path,
    *,
    resume: bool = False,
    during: Callable[[UploadManager], Coroutine[Any, Any, None]] | None = None,
    timeout: float = 60.0,
    **overrides: Any,
) -> Outcome:
    """Upload `paths` (and/or resume the journal) in process; returns the events."""
    events: list[Event] = []
    manager = make_manager(host, token, state_dir, events, **overrides)
    started = time.monotonic()
    side: asyncio.Task[None] | None = None
    try:
        async with asyncio.timeout(timeout):
            async with manager as m:
                if during is not None:
                    side = asyncio.create_task(during(m))
                if resume:
                    m.resume_unfinished()
                if paths:
                    await m.add_paths([os.fsencode(p) for p in paths])
                await m.wait_idle()
                if side is not None:
                    await side
    finally:
        if side is not None and not side.done():
            side.cancel()
        manager.journal.close()
    return Outcome(events, state_dir, time.monotonic() - started, manager)


def auth(token: str) -> dict[str, str]:
    return {"Synapse-Access-Token": f"Token {token}"}


def server_uploads(url: str, token: str) -> list[dict[str, Any]]:
    """The caller's uploads as the server lists them (bypassing any proxy)."""
    r = httpx.get(url.rstrip("/") + "/chunked_upload/", headers=auth(token), timeout=10)
    r.raise_for_status()
    data = r.json()
    return data["results"] if isinstance(data, dict) else data


def uploads_named(url: str, token: str, path: Path | bytes) -> list[dict[str, Any]]:
    name = upload_filename(os.fsencode(path))
    return [u for u in server_uploads(url, token) if u.get("filename") == name]


def assert_stored_once(server: Any, path: Path | bytes, *, upload_id: str | None = None) -> str:
    """Exactly one complete upload of `path` on the server, holding the file's bytes."""
    local = Path(os.fsdecode(path)).read_bytes()
    named = uploads_named(server.url, server.token, path)
    complete = [u for u in named if u.get("status") == 2]
    assert len(complete) == 1, f"expected one complete upload, server has {named}"
    found = complete[0]["id"]
    if upload_id is not None:
        assert found == upload_id
    stored = server.stored_bytes(found)
    assert len(stored) == len(local)
    assert stored == local, "server bytes differ from the local file"
    return str(found)


def put_starts(records: Sequence[RequestRecord]) -> list[int]:
    """The start offset of each PUT's Content-Range."""
    out = []
    for r in records:
        if r.method != "PUT":
            continue
        rng = r.headers.get("content-range", "")
        out.append(int(rng.split(" ")[1].split("-")[0]))
    return out


async def wait_until(predicate: Callable[[], object], timeout: float = 10.0) -> None:
    """Poll a condition with a deadline (for conditions without an event to wait on)."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


def via(proxy: FaultProxy) -> str:
    """The API root of the drf server, reached through `proxy`."""
    return proxy.url + "/api"
