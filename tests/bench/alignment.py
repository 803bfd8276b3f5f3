"""How fast the kernel copies a cached file into buffers that start at different page offsets.

Usage: python -m tests.bench.alignment [SIZE_MIB]

Reads a temporary file (cached first) with readv into 1 MiB windows of one
anonymous mmap, each window starting `offset` bytes past a page boundary, and
prints the rate per offset. It is the measurement behind
`synapse_tui.iobuf.aligned_buffer`: on some CPUs (this project's AMD EPYC among
them) offsets 8-24 copy several times slower than 0 or 32 and up.
"""

from __future__ import annotations

import mmap
import os
import sys
import tempfile
import time

MiB = 1 << 20
OFFSETS = (0, 8, 16, 24, 32, 48, 64, 2048)


def copy_rate(path: str, view: memoryview, size: int) -> float:
    fd = os.open(path, os.O_RDONLY)
    try:
        started = time.perf_counter()
        while os.readv(fd, [view]):
            pass
        return size / (time.perf_counter() - started)
    finally:
        os.close(fd)


def main() -> int:
    size = int(sys.argv[1]) * MiB if len(sys.argv) > 1 else 512 * MiB
    buffer = mmap.mmap(-1, 2 * MiB + 4096)
    whole = memoryview(buffer)
    with tempfile.NamedTemporaryFile(prefix="synapse-align-") as tmp:
        block = os.urandom(MiB)
        for _ in range(size // MiB):
            tmp.write(block)
        tmp.flush()
        copy_rate(tmp.name, whole[:MiB], size)  # cache it
        print(f"{'page offset':>12}  {'MiB/s (best of 3)':>18}")
        for offset in OFFSETS:
            view = whole[offset : offset + MiB]
            best = max(copy_rate(tmp.name, view, size) for _ in range(3))
            print(f"{offset:>12}  {best / MiB:>18,.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
