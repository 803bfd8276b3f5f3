"""Directory walk and xxh3_128 pre-scan, streamed in batches so uploads start early."""

from __future__ import annotations

import asyncio
import errno
import os
import stat
import threading
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass

from synapse_tui.engine.errors import FileError
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


def walk(paths: Iterable[bytes]) -> Iterator[tuple[bytes, os.stat_result] | Refused]:
    """Yield regular files (with their stat) and refused entries, depth first.

    Symbolic links are followed; a link back to a folder being walked is a loop and refused.
    Special files (FIFO, socket, device) are refused by their stat alone, never opened.
    """
    for top in paths:
        yield from _walk_one(top, ())


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
        reason = "dangling symbolic link" if os.path.islink(path) else "no such file or directory"
        yield Refused(path, reason, named or reason.startswith("no such"))
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
        with os.scandir(path) as it:
            entries = sorted((entry.name, _maybe_link(entry)) for entry in it)
    except OSError as exc:
        yield Refused(path, f"cannot list folder: {exc.strerror or exc}")
        return
    for name, link in entries:
        child_real = None if link else os.path.join(real, name)
        yield from _walk_one(os.path.join(path, name), (*ancestors, key), child_real)


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


async def scan(
    paths: Iterable[bytes],
    *,
    batch_files: int = 64,
    batch_bytes: int = 256 * 1024 * 1024,
    parallel: int | None = None,
    cancel: threading.Event | None = None,
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
            asyncio.run_coroutine_threadsafe(queue.put(item), loop).result()

        try:
            for item in walk(paths):
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
