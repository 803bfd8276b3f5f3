"""MD5 and xxh3_128 over files and file ranges: run in threads, one read pass, cancellable."""

from __future__ import annotations

import hashlib
import os
import stat
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import xxhash

from synapse_tui.engine.errors import FileChangedError, LocalFileError
from synapse_tui.iobuf import aligned_buffer

PIECE = 1024 * 1024  # bytes read per call while streaming a chunk
SCAN_PIECE = 4 * 1024 * 1024  # bytes read per call while hashing whole files
# Kernel filesystems whose files lie about their size or block forever.
SPECIAL_ROOTS = ("/proc/", "/sys/", "/dev/")

_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()
_worker_nice = 0


def set_worker_nice(increment: int) -> None:
    """Run the upload threads started from now on `increment` nice levels below the process.

    The dashboard does this so that, when the CPU is saturated, a key press is not queued
    behind hashing and sending; the CPU time left over still goes to the uploads.
    """
    global _worker_nice
    _worker_nice = max(0, min(19, increment))


def lower_this_thread() -> None:
    """Apply `set_worker_nice` to the calling thread (Unix; best effort, never raises)."""
    if _worker_nice <= 0 or not hasattr(os, "setpriority"):
        return
    try:  # relative to the main thread: new threads inherit their creator's level
        base = os.getpriority(os.PRIO_PROCESS, os.getpid())
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), min(19, base + _worker_nice))
    except OSError:
        pass


def io_executor() -> ThreadPoolExecutor:
    """The shared pool for file reads and hashing (hashlib/xxhash release the GIL)."""
    global _executor
    with _executor_lock:
        if _executor is None:
            workers = max(4, (os.cpu_count() or 2) * 2)
            _executor = ThreadPoolExecutor(
                max_workers=workers, thread_name_prefix="synapse-io", initializer=lower_this_thread
            )
        return _executor


_walkers: ThreadPoolExecutor | None = None
WALKERS = 4  # folders walked at once; more scans wait for a walker, never for a reader


def walk_executor() -> ThreadPoolExecutor:
    """The threads that walk folders, apart from `io_executor`.

    A walker blocks while its scan's queue is full, until the hashing it waits for runs:
    in the shared pool, four scans at once on two cores were four blocked walkers and no
    thread left to hash or read, and the engine froze.
    """
    global _walkers
    with _executor_lock:
        if _walkers is None:
            _walkers = ThreadPoolExecutor(
                max_workers=WALKERS,
                thread_name_prefix="synapse-walk",
                initializer=lower_this_thread,
            )
        return _walkers


@dataclass(frozen=True, slots=True)
class Identity:
    """What must not change while a file is uploaded: size, mtime, inode, device."""

    size: int
    mtime_ns: int
    inode: int
    device: int

    @classmethod
    def of(cls, st: os.stat_result) -> Identity:
        return cls(st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev)

    def describe_change(self, other: Identity) -> str | None:
        if (self.inode, self.device) != (other.inode, other.device):
            return "file was replaced"
        if other.size < self.size:
            return f"file shrank from {self.size} to {other.size} bytes"
        if other.size > self.size:
            return f"file grew from {self.size} to {other.size} bytes"
        if other.mtime_ns != self.mtime_ns:
            return "file was modified"
        return None


def check_regular(path: bytes) -> os.stat_result:
    """stat `path` and refuse anything but a readable regular file, without opening it."""
    real = os.path.realpath(path)
    if any(real.startswith(root.encode()) for root in SPECIAL_ROOTS):
        raise LocalFileError("refusing a file of a kernel filesystem (/proc, /sys, /dev)")
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise LocalFileError("dangling symbolic link") from None
        raise LocalFileError("no such file") from None
    except OSError as exc:
        raise LocalFileError(exc.strerror or str(exc)) from None
    if not stat.S_ISREG(st.st_mode):
        raise LocalFileError(f"not a regular file ({file_kind(st.st_mode)})")
    return st


def _still(path: bytes, expected: Identity | None) -> bool:
    """Whether `path` is still the regular file `expected` describes (same inode, device)."""
    if expected is None:
        return False
    try:
        st = os.stat(path)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_ino == expected.inode and st.st_dev == expected.device


def file_kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "directory"),
        (stat.S_ISFIFO, "FIFO"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
        (stat.S_ISLNK, "symbolic link"),
    ):
        if test(mode):
            return name
    return "special file"


# The system calls that open and read a file to upload, as seams: a test injects a failure
# here for the engine alone, not for every thread of the process (servers run in-process).
_open = os.open
_pread = os.pread


def open_regular(path: bytes, expected: Identity | None = None) -> tuple[int, Identity]:
    """Open a regular file for reading (never blocks on a FIFO) and check its identity.

    With `expected` (the identity a walk or the journal recorded, after its own checks), a
    plain `stat` showing that same regular file stands for the full check: resolving the
    path through every folder again cost a sixth of the client's CPU per small file.
    """
    if not _still(path, expected):
        check_regular(path)
    try:
        fd = _open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise LocalFileError(exc.strerror or str(exc)) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise LocalFileError(f"not a regular file ({file_kind(st.st_mode)})")
        ident = Identity.of(st)
        if expected is not None:
            change = expected.describe_change(ident)
            if change:
                raise FileChangedError(f"changed since it was scanned: {change}")
        return fd, ident
    except BaseException:
        os.close(fd)
        raise


class HashPair:
    """MD5 (what the server checks) and xxh3_128 (our fingerprint) of a file prefix."""

    __slots__ = ("md5", "position", "xxh")

    def __init__(self, md5: Any = None, xxh: Any = None, position: int = 0) -> None:
        self.md5 = md5 if md5 is not None else hashlib.md5()
        self.xxh = xxh if xxh is not None else xxhash.xxh3_128()
        self.position = position

    def copy(self) -> HashPair:
        return HashPair(self.md5.copy(), self.xxh.copy(), self.position)

    def update(self, data: bytes) -> None:
        self.md5.update(data)
        self.xxh.update(data)
        self.position += len(data)


def read_piece(fd: int, offset: int, length: int, hashes: HashPair | None) -> bytes:
    """Read exactly `length` bytes at `offset` (in a worker thread) and hash them if asked."""
    try:
        data = _pread(fd, length, offset)
    except OSError as exc:
        raise LocalFileError(f"read error at byte {offset}: {exc.strerror or exc}") from None
    if len(data) != length:
        raise FileChangedError(
            f"changed during upload: expected {length} bytes at {offset}, read {len(data)}"
        )
    if hashes is not None:
        if hashes.position != offset:
            raise RuntimeError(f"hash state at {hashes.position}, piece at {offset}")
        hashes.update(data)
    return data


def hash_prefix(
    fd: int,
    length: int,
    cancel: threading.Event | None = None,
    on_progress: Any = None,
) -> HashPair:
    """MD5 + xxh3 of the first `length` bytes (resume: re-hash what the server holds)."""
    hashes = HashPair()
    view = aligned_buffer(SCAN_PIECE)
    pos = 0
    while pos < length:
        if cancel is not None and cancel.is_set():
            raise InterruptedError("hashing cancelled")
        want = min(SCAN_PIECE, length - pos)
        try:
            got = os.preadv(fd, [view[:want]], pos)
        except OSError as exc:
            raise LocalFileError(f"read error at byte {pos}: {exc.strerror or exc}") from None
        if got != want:
            raise FileChangedError(f"file shrank while re-hashing (at byte {pos + got})")
        hashes.update(view[:want])  # type: ignore[arg-type]
        pos += want
        if on_progress is not None:
            on_progress(pos)
    return hashes


_buffers = threading.local()


def _scan_buffer() -> memoryview:
    """This thread's read buffer for whole-file hashing, kept between files: a fresh
    4 MiB mapping per file (and unmapping it, which interrupts every other thread of the
    process to flush its TLB) cost more than hashing a 20 KiB file."""
    view: memoryview | None = getattr(_buffers, "view", None)
    if view is None:
        view = _buffers.view = aligned_buffer(SCAN_PIECE)
    return view


def xxh3_file(
    path: bytes, cancel: threading.Event | None = None, expected: Identity | None = None
) -> tuple[str, int]:
    """xxh3_128 of a whole file; returns (hex digest, bytes read). Refuses special files.

    With `expected` (the walk's stat), a file changed since is refused, so the digest
    always belongs to the identity recorded with it."""
    fd, ident = open_regular(path, expected)
    try:
        h = xxhash.xxh3_128()
        view = _scan_buffer()
        total = 0
        while True:
            if cancel is not None and cancel.is_set():
                raise InterruptedError("scan cancelled")
            try:
                got = os.readv(fd, [view])
            except OSError as exc:
                raise LocalFileError(f"read error: {exc.strerror or exc}") from None
            if not got:
                break
            h.update(view[:got])
            total += got
            if total > ident.size:
                break
        if total != ident.size:
            raise FileChangedError(f"size changed while hashing ({ident.size} -> {total} bytes)")
        return h.hexdigest(), total
    finally:
        os.close(fd)
