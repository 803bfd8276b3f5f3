"""Uploads while a scan runs in the same engine: `python -m tests.bench.scan_contention`.

N x 20 KiB files upload through one in-process engine (default settings: what the
background engine runs) to the embedded backend (its own process), alone and while the
same engine scans a big tree (`--tree` tiny files): the scan a `scan` command runs
(walk + xxh3 of every file, findings consumed as they come). Prints the upload's files/s
each way, alternated `--rounds` times, with the medians, the scan's own rate and the
load average. Files are made once under `--work` (kept between runs).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

from synapse_tui.engine.events import Event, JobDone, JobQueued
from synapse_tui.engine.journal import Journal
from synapse_tui.engine.protocol import Credentials, ProtocolClient
from synapse_tui.engine.scan import FoundFile, scan
from synapse_tui.engine.scheduler import SMALL_BOOST, EngineOptions, UploadManager
from tests.bench.scale_cases import make_tiny_files
from tests.bench.support import embedded_server


def make_small(root: Path, count: int, size: int) -> Path:
    if (root / "done").exists():
        return root / "files"
    folder = root / "files"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (folder / f"s{i:06d}.bin").write_bytes(os.urandom(size))
    (root / "done").touch()
    return folder


def make_tree(root: Path, count: int) -> Path:
    if not (root / "done").exists():
        make_tiny_files(root / "files", count)
        (root / "done").touch()
    return root / "files"


async def one_run(
    url: str, token: str, state: Path, small: Path, tree: Path | None, mode: str, paced: bool
) -> dict[str, float]:
    """Upload `small` while `tree` is scanned (`scan`: findings only; `add`: queued by the
    same engine, behind the small files)."""
    done: list[float] = []
    scanned = 0
    all_done = asyncio.Event()
    count = sum(1 for _ in small.iterdir())

    def listen(event: Event) -> None:
        nonlocal scanned
        if isinstance(event, JobQueued) and not event.path.startswith(str(small)):
            scanned += 1  # a file of the tree, queued
        if isinstance(event, JobDone) and event.path.startswith(str(small)):
            done.append(time.monotonic())
            if len(done) == count:
                all_done.set()

    options = EngineOptions(host=url, small_boost=SMALL_BOOST, strategy="chunked")
    client = ProtocolClient(url, Credentials(access_token=token), max_connections=64)
    m = UploadManager(client, Journal(state), options, [listen])
    if not paced:
        m.intake.pacer.share = 1.0  # no pause: the scan's intake flat out (before pacing)
    scan_seconds = 0.0
    stop = asyncio.Event()

    async def scanner() -> None:
        nonlocal scanned, scan_seconds
        assert tree is not None
        started = time.monotonic()
        if mode == "add":
            m.options.tick = 0.5
            adding = asyncio.create_task(m.add_paths([str(tree)]))
            while not stop.is_set() and not adding.done():
                await asyncio.sleep(0.01)
            adding.cancel()
        else:
            async for batch in scan([os.fsencode(tree)]):
                scanned += sum(1 for item in batch if isinstance(item, FoundFile))
                if stop.is_set():
                    break
        scan_seconds = time.monotonic() - started

    async with m:
        task = asyncio.create_task(scanner()) if tree is not None else None
        if task is not None:
            while scanned < 2_000:  # the scan is under way when the uploads start
                await asyncio.sleep(0.01)
        started = time.monotonic()
        await m.add_paths([str(small)], priority=1)
        await all_done.wait()
        wall = time.monotonic() - started
        scanned_during = scanned
        if task is not None:
            stop.set()
            await task
    m.journal.close()
    await client.aclose()
    files = len(done)
    return {
        "files": files,
        "rate": files / wall,
        "scan_rate": scanned_during / wall if tree is not None else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=2_000)
    parser.add_argument("--size", type=int, default=20 * 1024)
    parser.add_argument("--tree", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mode", choices=("scan", "add"), default="add")
    parser.add_argument(
        "--work", type=Path, default=Path(tempfile.gettempdir()) / "scan-contention"
    )
    args = parser.parse_args()
    small = make_small(args.work / f"small{args.files}x{args.size}", args.files, args.size)
    tree = make_tree(args.work / f"tree{args.tree}", args.tree)
    sides = ("alone", "flat", "paced")
    rates: dict[str, list[float]] = {side: [] for side in sides}
    scans: dict[str, list[float]] = {side: [] for side in sides}
    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        for r in range(args.rounds):
            for side in sides:
                with embedded_server(Path(tmp) / f"srv-{r}-{side}") as backend:
                    got = asyncio.run(
                        one_run(
                            backend.url,
                            backend.token,
                            Path(tmp) / f"state-{r}-{side}",
                            small,
                            None if side == "alone" else tree,
                            args.mode,
                            side == "paced",
                        )
                    )
                assert got["files"] == args.files, got
                rates[side].append(got["rate"])
                scans[side].append(got["scan_rate"])
                print(
                    f"round {r + 1} {side:5}: {got['rate']:7.1f} files/s uploaded,"
                    f" {got['scan_rate']:6.0f} files/s scanned; load {os.getloadavg()[0]:.1f}",
                    flush=True,
                )
    alone = statistics.median(rates["alone"])
    for side in sides:
        up = statistics.median(rates[side])
        print(
            f"median {side:5}: {up:7.1f} files/s uploaded ({up / alone:.2f}x alone),"
            f" {statistics.median(scans[side]):6.0f} files/s scanned"
        )


if __name__ == "__main__":
    main()
