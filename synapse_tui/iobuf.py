"""Read buffers that the kernel copies into at full speed."""

from __future__ import annotations

import mmap


def aligned_buffer(size: int) -> memoryview:
    """A writable page-aligned buffer of `size` bytes, for read-and-hash loops.

    Where the destination starts within its page matters to the kernel's copy out
    of the page cache. On this project's AMD EPYC machine, reading a cached file into
    a buffer 8 to 24 bytes past a page boundary ran at 1.3-2.1 GB/s against 6-7 GB/s
    page-aligned (`python -m tests.bench.alignment`). A large `bytearray` lands
    exactly there: glibc's header puts its data 16 bytes into a page. An anonymous
    mmap starts on a page boundary; it is freed with its last view.
    """
    return memoryview(mmap.mmap(-1, max(size, 1)))
