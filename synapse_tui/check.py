"""`synapse-tui check`: a pre-flight that finds what will limit an upload, and how long it takes."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import xxhash

from synapse_tui.config import Settings
from synapse_tui.engine.errors import SynapseError
from synapse_tui.engine.hashing import SCAN_PIECE, io_executor
from synapse_tui.engine.protocol import ProtocolClient
from synapse_tui.engine.scan import walk
from synapse_tui.iobuf import aligned_buffer
from synapse_tui.units import format_duration, format_rate, format_size

HASH_BYTES = 256 * 1024 * 1024
READ_LIMIT = 1024 * 1024 * 1024
PROBE_BYTES = 16 * 1024 * 1024
FILE_PROBES = 16
FILE_PROBE_BYTES = 4096


def hash_rate(factory: Any, total: int = HASH_BYTES) -> float:
    """Bytes per second one core hashes with `factory` (hashlib.md5, xxhash.xxh3_128)."""
    buf = os.urandom(SCAN_PIECE)
    h = factory()
    started = time.perf_counter()
    for _ in range(total // len(buf)):
        h.update(buf)
    h.digest()
    return total / (time.perf_counter() - started)


def read_rate(path: str, limit: int = READ_LIMIT) -> tuple[float, int, int, int]:
    """Read up to `limit` bytes of the files under `path`:
    (rate, bytes read, total bytes, number of files)."""
    total = 0
    files = []
    for item in walk([os.fsencode(path)]):
        if isinstance(item, tuple):
            files.append(item[0])
            total += item[1].st_size
    buf = aligned_buffer(SCAN_PIECE)
    read = 0
    started = time.perf_counter()
    for name in files:
        if read >= limit:
            break
        try:
            with open(name, "rb", buffering=0) as f:
                while read < limit and (n := f.readinto(buf)):
                    read += n
        except OSError:
            continue
    elapsed = time.perf_counter() - started
    return (read / elapsed if elapsed > 0 and read else 0.0), read, total, len(files)


async def upload_probe(client: ProtocolClient) -> float:
    """PUT one chunk of random bytes and time it. The upload is left to expire on the server."""
    data = os.urandom(PROBE_BYTES)

    async def body() -> AsyncIterator[bytes]:
        for i in range(0, len(data), 1024 * 1024):
            yield data[i : i + 1024 * 1024]

    started = time.perf_counter()
    await client.put_chunk(None, "synapse-tui-check-probe.bin", body, 0, len(data), len(data) * 2)
    return len(data) / (time.perf_counter() - started)


async def file_probe(client: ProtocolClient, concurrency: int) -> float:
    """Files per second for tiny uploads, `concurrency` at once.

    What many small files cost is per file, not per byte: a request and its answer, and on
    the server a new file, an fsync and a commit. Each probe is the first chunk of an upload
    that is never finished (like the upload probe, it expires on the server).
    """
    data = os.urandom(FILE_PROBE_BYTES)

    async def body() -> AsyncIterator[bytes]:
        yield data

    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(i: int) -> None:
        async with gate:
            name = f"synapse-tui-check-probe-{i}.bin"
            await client.put_chunk(None, name, body, 0, len(data), len(data) * 2)

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(FILE_PROBES)))
    return FILE_PROBES / (time.perf_counter() - started)


def estimate(
    path_bytes: int, path_files: int, byte_rate: float, file_rate: float | None
) -> tuple[float, bool]:
    """Seconds to upload `path_files` files of `path_bytes` in all, and whether the per-file
    cost (not the byte rate) is the larger part: bytes at the slowest byte rate, plus each
    file at the probed file rate."""
    by_bytes = path_bytes / byte_rate
    by_files = path_files / file_rate if file_rate else 0.0
    return by_bytes + by_files, by_files > by_bytes


async def run_check(settings: Settings, args: argparse.Namespace) -> int:
    out: dict[str, Any] = {"event": "check", "host": settings.host}
    lines: list[str] = []
    ok = True
    loop = asyncio.get_running_loop()
    md5 = await loop.run_in_executor(io_executor(), hash_rate, hashlib.md5)
    xxh = await loop.run_in_executor(io_executor(), hash_rate, xxhash.xxh3_128)
    out.update(md5_rate=round(md5), xxh3_rate=round(xxh))
    lines.append(f"md5 (one core)     {format_rate(md5)}")
    lines.append(f"xxh3 (one core)    {format_rate(xxh)}")
    limits = {"md5": md5}
    if args.path:
        rate, read, total, count = await loop.run_in_executor(io_executor(), read_rate, args.path)
        out.update(disk_rate=round(rate), path_bytes=total, path_files=count)
        lines.append(f"disk read          {format_rate(rate)} ({format_size(read)} read)")
        if rate:
            limits["disk"] = rate
    if not settings.host or not settings.credentials.present:
        lines.append("backend            not configured (give --host and --token)")
        out["auth"] = "not configured"
        ok = False
    else:
        client = ProtocolClient(
            settings.host, settings.credentials, verify=settings.verify, proxy=settings.proxy
        )
        try:
            await client.ping()
            out["auth"] = "ok"
            lines.append(f"backend            {settings.host}: authenticated")
            upload = await upload_probe(client)
            out["upload_rate"] = round(upload)
            limits["upload"] = upload
            lines.append(f"upload (1 stream)  {format_rate(upload)} (a 16 MiB probe)")
            files_rate = await file_probe(client, settings.concurrency)
            out["files_rate"] = round(files_rate, 1)
            label = f"files (-j {settings.concurrency})"
            lines.append(
                f"{label:<19}{files_rate:,.0f} files/s ({FILE_PROBES} probe uploads of "
                f"{format_size(FILE_PROBE_BYTES)})"
            )
        except SynapseError as exc:
            ok = False
            out["auth"] = str(exc)
            lines.append(f"backend            {settings.host}: {exc}")
        finally:
            await client.aclose()
    slowest = min(limits, key=lambda k: limits[k])
    limit_line = f"{slowest} ({format_rate(limits[slowest])})"
    estimate_line = None
    if args.path and "path_bytes" in out:
        files = out["path_files"]
        seconds, per_file = estimate(
            out["path_bytes"], files, limits[slowest], out.get("files_rate")
        )
        if per_file:
            slowest = "files"
            limit_line = (
                f"files: the cost per file, not per byte ({files:,} files at "
                f"{out['files_rate']:,.0f} files/s; a higher -j may help)"
            )
        out["estimate_seconds"] = round(seconds, 1)
        estimate_line = (
            f"estimate           {format_size(out['path_bytes'])} in {files:,} "
            f"file{'s' if files != 1 else ''}, about {format_duration(seconds)}"
        )
    out["limited_by"] = slowest
    lines.append(f"limited by         {limit_line}")
    if estimate_line:
        lines.append(estimate_line)
    if args.json:
        sys.stdout.write(json.dumps(out) + "\n")
    else:
        sys.stdout.write("\n".join(lines) + "\n")
    return 0 if ok else 2
