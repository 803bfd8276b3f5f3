"""Stream a multipart request body straight into an upload's file at its offset.

The loop parses; two threads of the request's own write ~1 MiB batches with
`pwritev` and feed the MD5, up to 8 MiB behind the network (back-pressure: the
loop stops reading while they catch up). A third flushes what is written to disk
every few MiB, so the fsync that acknowledges the chunk has almost nothing left.
The file is cut back to the starting offset if anything goes wrong, so an
interrupted body never leaves unacknowledged bytes behind.

A body under 1 MiB (most files of a many-small-files batch) never starts those
threads: it is received whole and parsed in memory (`parse_whole` when it has the plain
shape); then one pool task hashes and validates it, and opens, writes, fsyncs and closes
the file. One hop to the pool instead of three.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.requests import Request

from synapse_tui.server import files
from synapse_tui.server.errors import ApiError
from synapse_tui.server.multipart import (
    FormError,
    StreamingForm,
    WholeForm,
    parse_small_body,
    parse_whole,
)
from synapse_tui.server.pool import off_loop

FLUSH_BYTES = 1 << 20
MAX_IN_FLIGHT = 8 << 20
SYNC_BYTES = 4 << 20
SMALL_BODY_LIMIT = 1 << 20
_fdatasync = getattr(os, "fdatasync", os.fsync)  # macOS has only fsync


@dataclass
class Received:
    """What a streamed form held: its text fields and the size of its `file` part."""

    fields: dict[str, str]
    file_seen: bool
    size: int
    md5: Any = field(repr=False)
    file_name: str | None = None  # the `file` part's filename


class _Batch:
    """File bytes waiting to be written; stops accepting past `limit` (the rest is counted only)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.accepted = 0
        self.pieces: list[memoryview] = []
        self.pending = 0

    def add(self, view: memoryview) -> None:
        room = self.limit - self.accepted
        if room <= 0:
            return
        if len(view) > room:
            view = view[:room]
        self.pieces.append(view)
        self.pending += len(view)
        self.accepted += len(view)

    def take(self) -> tuple[list[memoryview], int]:
        pieces, size = self.pieces, self.pending
        self.pieces, self.pending = [], 0
        return pieces, size


class _Worker:
    """One thread applying `step` to queued batches in order; reports progress to the loop."""

    def __init__(self, name: str, step: Callable[[list[memoryview], int], None]) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue: queue.SimpleQueue[tuple[list[memoryview], int] | None] = queue.SimpleQueue()
        self._step = step
        self.pending = 0
        self.cancelled = False
        self.progress = asyncio.Event()
        self.error: BaseException | None = None
        self.done: concurrent.futures.Future[None] = concurrent.futures.Future()
        threading.Thread(target=self._run, name=name, daemon=True).start()

    def _run(self) -> None:
        try:
            while (item := self._queue.get()) is not None:
                if self.error is None and not self.cancelled:
                    try:
                        self._step(*item)
                    except BaseException as exc:  # reported to the loop, which aborts
                        self.error = exc
                with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits
                    self._loop.call_soon_threadsafe(self._processed, item[1])
        finally:
            self.done.set_result(None)

    def _processed(self, size: int) -> None:
        self.pending -= size
        self.progress.set()

    def put(self, item: tuple[list[memoryview], int] | None) -> None:
        if item is not None:
            self.pending += item[1]
        self._queue.put(item)


class _Syncer:
    """A thread that makes written bytes durable while later ones are still arriving.

    `fdatasync` runs whenever `SYNC_BYTES` more have been written since the last
    one (requests coalesce), then the synced range leaves the page cache. Measured
    on ext4: the closing fsync of a 50 MiB chunk received at ~270 MiB/s fell from
    ~60 ms to ~4 ms. (`sync_file_range` only starts writeback and, with delayed
    allocation, left that fsync as slow as without it.)
    """

    def __init__(self, fd: int, position: int) -> None:
        self._fd = fd
        self._synced = position
        self._target = position
        self._closed = False
        self._wake = threading.Condition()
        self.error: BaseException | None = None
        self.done: concurrent.futures.Future[None] = concurrent.futures.Future()
        threading.Thread(target=self._run, name="synapse-syncer", daemon=True).start()

    def written(self, position: int) -> None:
        """Bytes up to `position` are written; flush them once enough have piled up."""
        if position - self._synced >= SYNC_BYTES:
            with self._wake:
                self._target = position
                self._wake.notify()

    def stop(self) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify()

    def _run(self) -> None:
        try:
            while True:
                with self._wake:
                    while self._target <= self._synced and not self._closed:
                        self._wake.wait()
                    if self._closed:
                        return
                    target = self._target
                try:
                    _fdatasync(self._fd)
                except BaseException as exc:  # reported through the writer, which aborts
                    self.error = exc
                    return
                files.drop_cache(self._fd, self._synced, target - self._synced)
                self._synced = target
        finally:
            self.done.set_result(None)


class _Writer:
    """Writes batches in order at advancing positions while another thread hashes them.

    Each has a thread of its own (not the shared pool, so a stalled client never
    starves other requests). Up to `MAX_IN_FLIGHT` bytes may wait, so receiving
    the next MiBs overlaps with writing and hashing the previous ones; a `_Syncer`
    flushes behind the writer so the final fsync is short.
    """

    def __init__(self, fd: int, position: int, md5: Any) -> None:
        self._fd = fd
        self._position = position
        self._syncer = _Syncer(fd, position)
        self._workers = [_Worker("synapse-writer", self._write)]
        if md5 is not None:
            self._workers.append(_Worker("synapse-hasher", lambda pieces, _n: _feed(md5, pieces)))

    def _write(self, pieces: list[memoryview], size: int) -> None:
        files.write_pieces(self._fd, self._position, pieces, None)
        self._position += size
        self._syncer.written(self._position)

    def _raise(self) -> None:
        for worker in self._workers:
            if worker.error is not None:
                raise worker.error
        if self._syncer.error is not None:
            raise self._syncer.error

    async def put(self, pieces: list[memoryview], size: int) -> None:
        self._raise()
        for worker in self._workers:
            worker.put((pieces, size))
        for worker in self._workers:
            while worker.pending > MAX_IN_FLIGHT and worker.error is None:
                worker.progress.clear()
                await worker.progress.wait()

    async def close(self) -> None:
        """Wait until everything queued is written and hashed; raise a worker's error.

        The syncer is stopped too (after its current flush): the fd is fsynced and
        closed next, and no thread may still be using it then.
        """
        for worker in self._workers:
            worker.put(None)
        for worker in self._workers:
            await asyncio.wrap_future(worker.done)
        self._syncer.stop()
        await asyncio.wrap_future(self._syncer.done)
        self._raise()

    def abort(self) -> None:
        """Stop and wait for the threads (blocking, one batch at most) before a truncation."""
        for worker in self._workers:
            worker.cancelled = True
            worker.put(None)
        self._syncer.stop()
        concurrent.futures.wait([w.done for w in self._workers] + [self._syncer.done])


def _feed(md5: Any, pieces: list[memoryview]) -> None:
    for piece in pieces:
        md5.update(piece)


def _check_and_store(
    md5: Any,
    pieces: list[memoryview],
    validate: Callable[[Received], None],
    received: Received,
    path: Path,
    start: int,
) -> None:
    """A small body, in the pool: hash it (off the loop; py-spy put that MD5 at 11% of the
    loop thread's samples with many small files), validate, and only then store it."""
    if md5 is not None:
        _feed(md5, pieces)
    validate(received)
    files.store_at(path, start, pieces)


async def receive_file(
    executor: concurrent.futures.Executor,
    request: Request,
    boundary: bytes,
    path: Path,
    start: int,
    limit: int,
    md5: Any,
    validate: Callable[[Received], None],
) -> Received:
    """Write the `file` part at `start` (at most `limit` bytes), validate, then fsync.

    `validate` runs once the whole body is in (and, for a big body, written) but before
    fsync; an ApiError from it (or any failure, a client disconnect included) leaves the
    file cut back to `start` (a small body is not written at all) and propagates.
    """
    fd = -1
    batch = _Batch(limit)
    form: StreamingForm | WholeForm | None = None
    held: list[bytes] | None = []  # a small body waits, whole, for parse_whole
    held_size = 0
    writer: _Writer | None = None
    try:
        try:
            async for data in request.stream():
                if held is not None:
                    held.append(data)
                    held_size += len(data)
                    if held_size <= SMALL_BODY_LIMIT:
                        continue
                    form = StreamingForm(boundary, batch.add)  # not small: stream it
                    for piece in held:
                        form.feed(piece)
                    held = None
                else:
                    assert isinstance(form, StreamingForm)
                    form.feed(data)
                if batch.pending >= FLUSH_BYTES:
                    if writer is None:  # a big body: its own threads write, hash and flush
                        fd = await off_loop(executor, files.open_at, path, start)
                        writer = _Writer(fd, start, md5)
                    await writer.put(*batch.take())
            if held is not None:
                body = held[0] if len(held) == 1 else b"".join(held)
                form = parse_whole(body, boundary, batch.add)
                if form is None:  # not the plain shape: the streaming parser decides
                    form = StreamingForm(boundary, batch.add)
                    form.feed(body)
            if isinstance(form, StreamingForm):
                form.close()
        except FormError as exc:
            raise ApiError(400, str(exc)) from None
        assert form is not None
        pieces, size = batch.take()
        received = Received(dict(form.fields), form.file_seen, form.file_size, md5, form.file_name)
        if writer is None:
            # A small body, all in memory: one pool task hashes and checks it, then opens,
            # writes, fsyncs and closes (nothing is written if it is refused).
            await off_loop(executor, _check_and_store, md5, pieces, validate, received, path, start)
            return received
        if pieces:
            await writer.put(pieces, size)
        await writer.close()
        writer = None
        validate(received)
        done, fd = fd, -1  # finish closes it, whatever happens
        await off_loop(executor, files.finish, done, start)
        return received
    except BaseException:
        if writer is not None:
            writer.abort()  # it must be done before the cut, or it could write past it
        if fd >= 0:
            files.abandon(fd, start)
        raise


async def read_small_body(request: Request) -> dict[str, Any]:
    """The fields of a small JSON, urlencoded or multipart body (file parts are skipped)."""
    content_type = request.headers.get("content-type")
    chunks: list[bytes] = []
    size = 0
    from synapse_tui.server.multipart import boundary_of

    boundary = boundary_of(content_type)
    form = StreamingForm(boundary, sink=None) if boundary is not None else None
    try:
        async for data in request.stream():
            size += len(data)  # a form too: its file parts are skipped, but not forever
            if size > SMALL_BODY_LIMIT:
                raise ApiError(413, "Request body is too large")
            if form is not None:
                form.feed(data)
                continue
            chunks.append(data)
        if form is not None:
            form.close()
            return dict(form.fields)
        return parse_small_body(content_type, b"".join(chunks))
    except FormError as exc:
        raise ApiError(400, str(exc)) from None
