"""Case 9: a million queued files: peak RSS of `upload` at 100k and at 1M files (flat)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from tests.bench.cases import Context, Row, ours_upload, verdict
from tests.bench.support import MiB, embedded_server, say

PER_FOLDER = 1000  # files per sub-folder (a million in one folder is slow for every tool)
TINY = 64  # bytes per file: the queue's cost, not the bytes', is measured
# A million files on a loaded 2-core machine: 1-3 hours (the suite's one-hour default would
# cut the run short and lose the row).
TIMEOUT = 6 * 3600.0


def make_tiny_files(root: Path, count: int) -> Path:
    """`count` distinct files of TINY bytes under `root`, PER_FOLDER per sub-folder."""
    for start in range(0, count, PER_FOLDER):
        folder = root / f"d{start // PER_FOLDER:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(start, min(count, start + PER_FOLDER)):
            # Distinct content: a duplicate would be skipped, not queued.
            data = f"{i:016d}".encode() * (TINY // 16)
            fd = os.open(folder / f"f{i:07d}.bin", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
    return root


def peak(ctx: Context, count: int) -> tuple[float, float]:
    """(peak RSS MiB, wall seconds) of one `upload --foreground` of `count` tiny files at
    the default settings: the engine runs in the measured process (the background engine
    would be a process of its own, outside /usr/bin/time's count)."""
    ctx.work.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"bench-million-{count}-", dir=ctx.work))
    try:
        say(f"data: {count:,} files of {TINY} B (generated, removed after)")
        folder = make_tiny_files(tmp / "files", count)
        with embedded_server(tmp / "srv") as b:
            m = ours_upload(
                ctx, b, [folder], 50 * MiB, count, extra=("--foreground",), timeout=TIMEOUT
            )
        return (m.peak_rss or 0) / MiB, m.seconds
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def case_million(ctx: Context) -> list[Row]:
    """One run at each size (peak RSS varies by a few MiB, not tens, between runs)."""
    small_n, big_n = ctx.sizes.million
    small_rss, small_s = peak(ctx, small_n)
    big_rss, big_s = peak(ctx, big_n)
    growth = big_rss / small_rss if small_rss else None
    from tests.bench.recovery_cases import recovery  # imports this module

    rec = recovery(ctx, big_n)
    details = {
        "rss_mib": {small_n: small_rss, big_n: big_rss},
        "seconds": {small_n: small_s, big_n: big_s},
    }
    return [
        Row(
            f"9a peak RSS of upload, {big_n:,} files of {TINY} B (default settings)",
            f"{big_rss:.0f} MiB",
            f"{small_rss:.0f} MiB at {small_n:,}",
            big_rss / 200,
            "<= 200 MiB",
            verdict(big_rss <= 200),
            details,
        ),
        Row(
            f"9b RSS flat as the queue grows ({small_n:,} -> {big_n:,} files)",
            f"x{growth:.2f}" if growth else "-",
            "-",
            growth,
            "<= 1.5x",
            verdict(growth is not None and growth <= 1.5),
            details,
        ),
        Row(
            f"9c recovery: engine SIGKILLed with {rec.rows:,} files in its journal "
            f"({rec.done_before:,} done), `resume` to its first upload",
            f"{rec.seconds:.1f} s, {rec.peak_rss:.0f} MiB",
            "-",
            rec.peak_rss / 200,
            "<= 200 MiB",
            verdict(0 < rec.peak_rss <= 200),
            {"recovery": rec.__dict__},
        ),
    ]
