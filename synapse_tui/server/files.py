"""Blocking file I/O of the upload store: positional writes, fsync, truncation, re-hashing.

Every function here may block on the disk; callers run them in a worker thread.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from synapse_tui.iobuf import aligned_buffer

READ_SIZE = 1 << 20
_IOV_MAX = 512  # well under every platform's IOV_MAX


def open_at(path: Path, start: int) -> int:
    """Open (creating 0600) `path` for writing and cut it to `start` bytes.

    Bytes past `start` were never acknowledged (a crash between write and commit,
    or an interrupted body), so they are dropped before anything new is written.
    """
    flags = os.O_WRONLY | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
    if start == 0:
        return os.open(path, flags | os.O_TRUNC, 0o600)  # cut by the open itself
    fd = os.open(path, flags, 0o600)
    try:
        os.ftruncate(fd, start)
    except BaseException:
        os.close(fd)
        raise
    return fd


def write_pieces(fd: int, position: int, pieces: Sequence[Any], md5: Any) -> int:
    """Write `pieces` (bytes-like) at `position`, feeding `md5` unless None; returns the count."""
    written = 0
    if md5 is not None:
        for piece in pieces:
            md5.update(piece)
    for i in range(0, len(pieces), _IOV_MAX):
        group = pieces[i : i + _IOV_MAX]
        want = sum(len(p) for p in group)
        done = os.pwritev(fd, group, position + written) if hasattr(os, "pwritev") else 0
        if done < want:  # short write (or no pwritev): finish piece by piece
            _write_rest(fd, position + written, group, done)
        written += want
    return written


def _write_rest(fd: int, position: int, group: Sequence[Any], done: int) -> None:
    skip = done
    pos = position + done
    for piece in group:
        view = memoryview(piece)
        if skip >= len(view):
            skip -= len(view)
            continue
        view = view[skip:]
        skip = 0
        while view:
            n = os.pwrite(fd, view, pos)
            pos += n
            view = view[n:]


def drop_cache(fd: int, position: int, size: int) -> None:
    """Let the kernel forget cached pages of a range already on disk (size 0: to the end).

    An upload server rarely reads back what it just wrote; recycling those pages
    instead of filling RAM with them costs far less CPU per GiB (measured ~3x less
    system time on a VM). Pages still dirty are left alone by the kernel.
    """
    if hasattr(os, "posix_fadvise"):
        with contextlib.suppress(OSError):
            os.posix_fadvise(fd, position, size, os.POSIX_FADV_DONTNEED)


def finish(fd: int, start: int = 0, drop: bool = True) -> None:
    """Make the written bytes durable, drop them from the page cache (unless `drop` is
    False), then close."""
    try:
        os.fsync(fd)
        if drop:
            drop_cache(fd, start, 0)
    finally:
        os.close(fd)


def store_at(path: Path, start: int, pieces: Sequence[Any]) -> None:
    """Open `path` cut to `start`, write `pieces` there, fsync, close: a small body in one go.

    On any failure the file is cut back to `start` (nothing unacknowledged stays). Its few
    pages stay in the page cache (clean, reclaimable): dropping them pays off for a
    streamed body, not for a system call per small file."""
    fd = open_at(path, start)
    try:
        write_pieces(fd, start, pieces, None)
    except BaseException:
        abandon(fd, start)
        raise
    finish(fd, start, drop=False)


def abandon(fd: int, start: int) -> None:
    """Drop whatever this request wrote past `start`, then close."""
    try:
        os.ftruncate(fd, start)
    finally:
        os.close(fd)


def truncate(path: Path, size: int) -> None:
    """Cut `path` to `size` bytes if it is longer (missing files are ignored)."""
    try:
        if path.stat().st_size > size:
            os.truncate(path, size)
    except FileNotFoundError:
        pass


def sync_dir(path: Path) -> None:
    """fsync a folder so a new entry in it survives a crash (no-op where unsupported)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove(path: Path) -> None:
    """Delete `path` if it exists."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def size_of(path: Path) -> int | None:
    """The size of `path`, or None when it does not exist."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return None


def hash_range(
    path: Path,
    start: int,
    end: int,
    md5: Any = None,
    stop: Callable[[], bool] | None = None,
) -> Any:
    """Feed bytes [start, end) of `path` to `md5` (a new one if None) and return it.

    Used to rebuild the running MD5 of an upload after a restart; `stop()` turning
    true (server shutting down) interrupts it between reads.
    """
    md5 = hashlib.md5() if md5 is None else md5
    if end <= start:
        return md5
    view = aligned_buffer(READ_SIZE)
    left = end - start
    with open(path, "rb", buffering=0) as fh:
        fh.seek(start)
        while left:
            if stop is not None and stop():
                raise InterruptedError("hashing interrupted: the server is stopping")
            n = fh.readinto(view[: min(READ_SIZE, left)])
            if not n:
                raise OSError(f"{path.name} is shorter than its recorded offset")
            md5.update(view[:n])
            left -= n
    return md5
