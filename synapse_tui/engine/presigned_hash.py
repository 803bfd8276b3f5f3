"""One read pass over a file for the presigned path: each part's MD5, the SHA1 and the xxh3."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable

import xxhash

from synapse_tui.engine.errors import FileChangedError, LocalFileError
from synapse_tui.engine.hashing import SCAN_PIECE


def hash_parts(
    fd: int, size: int, part_size: int, on_part: Callable[[int, bytes], None], stop: threading.Event
) -> tuple[str, str, str]:
    """One read pass (in a thread): each part's MD5 as it completes, then the file's SHA1,
    xxh3 and MD5 (the MD5 only when the file is one part)."""
    sha1, xxh, md5 = hashlib.sha1(), xxhash.xxh3_128(), hashlib.md5()
    number, in_part, pos = 1, 0, 0
    while pos < size:
        if stop.is_set():
            raise Stopped()
        take = min(SCAN_PIECE, size - pos, part_size - in_part)
        try:
            data = os.pread(fd, take, pos)
        except OSError as exc:
            raise LocalFileError(f"read error at byte {pos}: {exc.strerror or exc}") from None
        if len(data) != take:
            raise FileChangedError(f"changed during upload: short read at byte {pos}")
        sha1.update(data)
        xxh.update(data)
        md5.update(data)
        pos += take
        in_part += take
        if in_part == part_size or pos == size:
            on_part(number, md5.digest())
            whole = md5.hexdigest() if number == 1 and pos == size else ""
            number, in_part, md5 = number + 1, 0, hashlib.md5()
    if size == 0:
        on_part(1, md5.digest())
        whole = md5.hexdigest()
    return sha1.hexdigest(), xxh.hexdigest(), whole


def md5_range(fd: int, start: int, length: int) -> bytes:
    """The MD5 digest of `length` bytes at `start` (a part's Content-MD5), in a thread."""
    md5 = hashlib.md5()
    pos, end = start, start + length
    while pos < end:
        take = min(SCAN_PIECE, end - pos)
        try:
            data = os.pread(fd, take, pos)
        except OSError as exc:
            raise LocalFileError(f"read error at byte {pos}: {exc.strerror or exc}") from None
        if len(data) != take:
            raise FileChangedError(f"changed during upload: short read at byte {pos}")
        md5.update(data)
        pos += take
    return md5.digest()


def ignore_parts(number: int, digest: bytes) -> None:
    pass


class Stopped(Exception):
    """The hash pass was stopped (the job ended first)."""


NEVER = threading.Event()  # a stop flag that is never set
