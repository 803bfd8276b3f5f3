"""Per-job locks between processes: a byte of one file (OFD locks), else a file per job."""

from __future__ import annotations

import errno
import fcntl
import os
import struct
from collections.abc import Callable
from pathlib import Path

_OFD_SETLK: int | None = getattr(fcntl, "F_OFD_SETLK", None)  # Linux 3.15+
_UNSUPPORTED = (errno.EINVAL, errno.ENOSYS, errno.ENOLCK, errno.EOPNOTSUPP)
_LOCK_FLAGS = os.O_CREAT | os.O_RDWR | getattr(os, "O_CLOEXEC", 0)

# fcntl(fd, cmd, arg) as the kernel answers it; a test passes one that refuses OFD locks.
Fcntl = Callable[[int, int, bytes], object]


def _flock(kind: int, job_id: int) -> bytes:
    """A `struct flock` for byte `job_id` (l_type, l_whence, l_start, l_len, l_pid = 0)."""
    return struct.pack("hhqqi4x", kind, os.SEEK_SET, job_id, 1, 0)


class JobLocks:
    """The job locks one Journal holds.

    On Linux a job's lock is byte `job_id` of `jobs.lock`, taken with an open file
    description lock: it conflicts with any other open of the file (another process, or
    another Journal in this one), and it goes when the process does. Elsewhere each job has
    a lock file of its own, locked with flock (a file created per job: the cost that made
    this the first item of the small-files profile, and a folder that grew with every job
    ever run).
    """

    def __init__(self, directory: Path, fcntl_call: Fcntl = fcntl.fcntl) -> None:
        self.directory = directory
        self._fcntl = fcntl_call
        self._held: dict[int, int] = {}  # job id -> its lock file's fd (-1: a byte of jobs.lock)
        self._lock_fd = -1
        self._use_ofd = _OFD_SETLK is not None

    def holds(self, job_id: int) -> bool:
        return job_id in self._held

    def held(self) -> list[int]:
        return list(self._held)

    def try_lock(self, job_id: int) -> bool:
        """Take the lock on a job; False if another process (or Journal) holds it."""
        if job_id in self._held:
            return True
        if self._use_ofd and _OFD_SETLK is not None:
            if self._lock_fd < 0:
                self._lock_fd = os.open(self.directory / "jobs.lock", _LOCK_FLAGS, 0o600)
            try:
                self._fcntl(self._lock_fd, _OFD_SETLK, _flock(fcntl.F_WRLCK, job_id))
            except OSError as exc:
                if exc.errno in (errno.EAGAIN, errno.EACCES):
                    return False
                if exc.errno not in _UNSUPPORTED:
                    raise
                self._use_ofd = False  # an old kernel or a filesystem without them
            else:
                self._held[job_id] = -1
                return True
        locks = self.directory / "locks"
        locks.mkdir(mode=0o700, exist_ok=True)
        fd = os.open(locks / f"{job_id}.lock", _LOCK_FLAGS, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._held[job_id] = fd
        return True

    def unlock(self, job_id: int) -> None:
        fd = self._held.pop(job_id, None)
        if fd == -1 and _OFD_SETLK is not None:
            self._fcntl(self._lock_fd, _OFD_SETLK, _flock(fcntl.F_UNLCK, job_id))
        elif fd is not None:
            os.close(fd)

    def close(self) -> None:
        for job_id in list(self._held):
            self.unlock(job_id)
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1
