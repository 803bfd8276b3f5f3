"""Directory walk and xxh3_128 pre-scan, streamed in batches so uploads start early."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import errno
import heapq
import os
import stat
import struct
import tempfile
import threading
from collections.abc import AsyncIterator, Generator, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from synapse_tui.engine.errors import FileError
from synapse_tui.engine.filters import PathFilter, relative_to
from synapse_tui.engine.hashing import (
    SPECIAL_ROOTS,
    Identity,
    file_kind,
    io_executor,
    walk_executor,
    xxh3_file,
)
from synapse_tui.engine.names import display_path


@dataclass(frozen=True, slots=True)
class FoundFile:
    """A regular file with its identity and content fingerprint."""

    path: bytes
    identity: Identity
    fingerprint: str

    @property
    def display(self) -> str:
        return display_path(self.path)


@dataclass(frozen=True, slots=True)
class Refused:
    """An entry that will not be uploaded, with a one-line reason."""

    path: bytes
    reason: str
    error: bool = True  # False: skipped with a notice (a FIFO found inside a folder...)

    @property
    def display(self) -> str:
        return display_path(self.path)


GONE = "no such file or directory"  # an entry listed, then gone before its stat


def walk(
    paths: Iterable[bytes],
    path_filter: PathFilter | None = None,
    cancel: threading.Event | None = None,
) -> Generator[tuple[bytes, os.stat_result] | Refused]:
    """Yield regular files (with their stat) and refused entries, depth first.

    Symbolic links are followed; a link back to a folder being walked is a loop and refused.
    Special files (FIFO, socket, device) are refused by their stat alone, never opened.
    `path_filter` leaves out the files it does not take, and the notices of entries it
    does not take; an error (a folder that cannot be listed...) is always yielded, but for
    an entry that vanished while the folder was walked (nothing of it can be taken).
    `cancel` set: the walk stops, even among files the filter leaves out (none reaches
    the caller, who would otherwise see it only after the rest of the tree).
    """
    for top in paths:
        if not path_filter:
            yield from _walk_one(top, ())
            continue
        for item in _walk_one(top, ()):
            if cancel is not None and cancel.is_set():
                return
            if isinstance(item, Refused):
                # An entry gone mid-walk held nothing to take: an error only if taken.
                gone = item.path != top and item.reason == GONE
                if (item.error and not gone) or path_filter.takes(relative_to(top, item.path)):
                    yield item
            elif path_filter.takes(relative_to(top, item[0])):
                yield item


def _walk_one(
    path: bytes, ancestors: tuple[tuple[int, int], ...], real: bytes | None = None
) -> Iterator[tuple[bytes, os.stat_result] | Refused]:
    # Given by name, a bad entry is an error; found inside a folder, it is skipped.
    # `real`: the resolved path when the caller knows it (an entry that is no link, in a
    # resolved folder), which spares resolving every folder of the path again per file.
    named = not ancestors
    if real is None:
        real = os.path.realpath(path)
    if any(real == r.rstrip("/").encode() or real.startswith(r.encode()) for r in SPECIAL_ROOTS):
        yield Refused(path, "refusing a kernel filesystem (/proc, /sys, /dev)", named)
        return
    try:
        st = os.stat(path)
    except FileNotFoundError:
        reason = "dangling symbolic link" if os.path.islink(path) else GONE
        yield Refused(path, reason, named or reason == GONE)
        return
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            yield Refused(path, "symbolic link loop", named)
        else:
            yield Refused(path, exc.strerror or str(exc))
        return
    if stat.S_ISREG(st.st_mode):
        yield path, st
        return
    if not stat.S_ISDIR(st.st_mode):
        yield Refused(path, f"not a regular file ({file_kind(st.st_mode)})", named)
        return
    key = (st.st_dev, st.st_ino)
    if key in ancestors:
        yield Refused(path, "directory loop (a link back to a parent folder)", named)
        return
    try:
        entries = _listing(path)
    except OSError as exc:
        yield Refused(path, f"cannot list folder: {exc.strerror or exc}")
        return
    with entries:
        names = iter(entries)
        while True:
            try:
                name, link = next(names)
            except StopIteration:
                break
            except OSError as exc:  # a large folder's spilled runs failed to read back
                reason = exc.strerror or str(exc)
                yield Refused(path, f"cannot read the rest of the folder's listing: {reason}")
                return
            child_real = None if link else os.path.join(real, name)
            yield from _walk_one(os.path.join(path, name), (*ancestors, key), child_real)


RUN = 50_000  # names sorted in memory at once; a larger folder is sorted in runs on disk
MERGE_BUFFERS = 4 << 20  # the runs' read buffers together, while merged ...
MIN_BLOCK, MAX_BLOCK = 4 << 10, 64 << 10  # ... within these a run
_RECORD = struct.Struct(">HB")  # a name's length, whether it may be a link; then the name


class _Listing:
    """A folder's entries by name, `(name, may be a link)`, read before any is walked (the
    folder is closed before its sub-folders are opened). Up to RUN names are sorted in
    memory; a larger folder (a million images in one folder) is listed in sorted runs of
    RUN names spilled to one temporary file, then merged: its memory is one run while
    listed and a read buffer a run while walked (MERGE_BUFFERS in all, MIN_BLOCK at least
    each), not every name it holds."""

    def __init__(self, names: list[tuple[bytes, bool]], spill: BinaryIO | None, runs: list[int]):
        self._names = names
        self._spill = spill
        self._runs = runs  # offsets of the runs in `spill`, and its end

    def __enter__(self) -> _Listing:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._spill is not None:
            self._spill.close()

    def __iter__(self) -> Iterator[tuple[bytes, bool]]:
        if self._spill is None:
            return iter(self._names)
        fd = self._spill.fileno()
        bounds = list(zip(self._runs, self._runs[1:], strict=False))
        block = max(MIN_BLOCK, min(MAX_BLOCK, MERGE_BUFFERS // len(bounds)))
        return heapq.merge(*(_read_run(fd, start, end, block) for start, end in bounds))


class _NoSpill(Exception):
    """A large folder's runs could not be written (TMPDIR full or not writable)."""


def _listing(path: bytes) -> _Listing:
    try:
        return _listing_in_runs(path)
    except _NoSpill:  # sorted in memory, as before runs: never its files refused for it
        with os.scandir(path) as it:
            return _Listing(sorted((e.name, _maybe_link(e)) for e in it), None, [0])


def _listing_in_runs(path: bytes) -> _Listing:
    run = RUN
    names: list[tuple[bytes, bool]] = []
    spill: BinaryIO | None = None
    runs: list[int] = [0]
    try:
        with os.scandir(path) as it:
            for entry in it:
                names.append((entry.name, _maybe_link(entry)))
                if len(names) >= run:
                    try:
                        if spill is None:  # closed by the listing, or below on an error
                            spill = tempfile.TemporaryFile(prefix="synapse-tui-listing-")  # noqa: SIM115
                        runs.append(_spill(spill, names))
                    except OSError as exc:
                        raise _NoSpill from exc
                    names = []
        names.sort()
        if spill is not None and names:
            try:
                runs.append(_spill(spill, names))
            except OSError as exc:
                raise _NoSpill from exc
            names = []
        if spill is not None:
            try:
                spill.flush()
            except OSError as exc:
                raise _NoSpill from exc
    except BaseException:
        if spill is not None:
            with contextlib.suppress(OSError):  # its close flushes: into a full disk, too
                spill.close()
        raise
    return _Listing(names, spill, runs)


def _spill(spill: BinaryIO, names: list[tuple[bytes, bool]]) -> int:
    """Write `names` sorted as one run; the file's end after it."""
    names.sort()
    pack = _RECORD.pack
    spill.write(b"".join(pack(len(n), link) + n for n, link in names))
    return spill.tell()


def _read_run(fd: int, start: int, end: int, block: int) -> Iterator[tuple[bytes, bool]]:
    """The entries of one run, read a block at a time at its own offset (`os.pread`: the
    runs share one file and none moves another's position)."""
    buf = b""
    at = 0

    def fill(n: int) -> None:  # at least n bytes at `at`
        nonlocal buf, at, start
        while len(buf) - at < n:
            more = os.pread(fd, min(max(block, n), end - start), start) if start < end else b""
            if not more:
                raise OSError(errno.EIO, "a folder's listing was cut short")
            start += len(more)
            buf = buf[at:] + more
            at = 0

    while start < end or at < len(buf):
        fill(_RECORD.size)
        length, link = _RECORD.unpack_from(buf, at)
        at += _RECORD.size
        fill(length)
        yield buf[at : at + length], bool(link)
        at += length


def _maybe_link(entry: os.DirEntry[bytes]) -> bool:
    """Whether an entry may be a symbolic link (unknown counts as yes: resolved the slow way)."""
    try:
        return entry.is_symlink()
    except OSError:
        return True


def _hash_batch(
    batch: list[tuple[bytes, os.stat_result]], cancel: threading.Event
) -> list[FoundFile | Refused]:
    out: list[FoundFile | Refused] = []
    for path, st in batch:
        if cancel.is_set():
            break
        try:
            identity = Identity.of(st)
            digest, _ = xxh3_file(path, cancel, identity)
        except FileError as exc:
            out.append(Refused(path, str(exc)))
            continue
        except InterruptedError:
            break
        out.append(FoundFile(path, identity, digest))
    return out


def hand_over(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[Any], item: Any) -> bool:
    """Put `item` on `queue` of `loop` from another thread, once it has room: False when the
    loop closed (an engine shut down mid-scan) or stopped without taking it, never a
    coroutine left unawaited or a thread waiting for a loop that will not run again."""
    put = queue.put(item)
    try:
        future = asyncio.run_coroutine_threadsafe(put, loop)
    except RuntimeError:  # closed
        put.close()
        return False
    while True:
        try:
            future.result(timeout=0.5)
            return True
        except concurrent.futures.TimeoutError:
            if loop.is_closed() or not loop.is_running():
                future.cancel()  # its task is the loop's to cancel as it closes (asyncio.run)
                return False
        except concurrent.futures.CancelledError:
            return False


async def scan(
    paths: Iterable[bytes],
    *,
    batch_files: int = 64,
    batch_bytes: int = 256 * 1024 * 1024,
    parallel: int | None = None,
    cancel: threading.Event | None = None,
    path_filter: PathFilter | None = None,
) -> AsyncIterator[list[FoundFile | Refused]]:
    """Walk `paths` and hash every regular file with xxh3_128, yielding results in batches.

    Several batches hash at once in threads (two cores hash two files at once); the walk
    itself runs in a walker thread (`walk_executor`), so the event loop never blocks on the
    disk and a walker waiting for room in the queue never holds a thread hashing needs.
    """
    cancel = cancel or threading.Event()
    parallel = parallel or max(2, os.cpu_count() or 2)
    loop = asyncio.get_running_loop()
    executor = io_executor()
    queue: asyncio.Queue[list[tuple[bytes, os.stat_result]] | Refused | None] = asyncio.Queue(
        maxsize=parallel * 2
    )

    def producer() -> None:
        batch: list[tuple[bytes, os.stat_result]] = []
        size = 0

        def put(item: list[tuple[bytes, os.stat_result]] | Refused | None) -> None:
            if not hand_over(loop, queue, item):
                cancel.set()  # the loop is gone: nothing will read what comes next

        try:
            for item in walk(paths, path_filter, cancel):
                if cancel.is_set():
                    break
                if isinstance(item, Refused):
                    put(item)
                    continue
                batch.append(item)
                size += item[1].st_size
                if len(batch) >= batch_files or size >= batch_bytes:
                    put(batch)
                    batch, size = [], 0
            if batch:
                put(batch)
        finally:
            put(None)

    walker = loop.run_in_executor(walk_executor(), producer)  # blocks: never a hashing thread
    pending: list[asyncio.Future[list[FoundFile | Refused]]] = []
    done_walking = False
    try:
        while not done_walking or pending:
            while not done_walking and len(pending) < parallel:
                item = await queue.get()
                if item is None:
                    done_walking = True
                elif isinstance(item, Refused):
                    yield [item]
                else:
                    pending.append(loop.run_in_executor(executor, _hash_batch, item, cancel))
            if pending:
                # Results in walk order: wait for the oldest batch.
                first = pending.pop(0)
                yield await first
    finally:
        cancel.set()
        while not queue.empty():
            queue.get_nowait()
        for fut in pending:
            fut.cancel()
        # Unblock a producer waiting on a full queue, then let it finish.
        while not walker.done():
            try:
                queue.get_nowait()
            except asyncio.QueueEmpty:
                await asyncio.sleep(0.01)
        await walker
