"""Where a small-file upload's CPU goes: `python -m tests.bench.cpu_split [--files N] [--rounds R]`.

Case 4's upload (N x 20 KiB at the default settings, whole command, through the background
engine) against a fresh embedded backend, R times; prints each process's CPU (user + system)
in ms per file: the front end (`/usr/bin/time`), the engine (its /proc stat just before it
exits) and the backend (its /proc stat before and after), with the wall time and the load;
then the medians, with the system part of the engine's and the backend's CPU.
On a machine whose cores are all busy the wall time is about the sum of these over the
cores, so the sum is the floor this machine sets for the case. The official client's
side is case 4's (`python -m tests.bench.run --only 4`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from tests.bench.support import (
    REPO_ROOT,
    TIME_V,
    cli,
    client_env,
    embedded_server,
    make_small_files,
    warm,
)

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_times(pid: int) -> tuple[float, float] | None:
    """User and system CPU of a live process, from /proc (None once it has gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[11]) / TICKS, int(fields[12]) / TICKS


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU of a live process, from /proc (None once it has gone)."""
    times = cpu_times(pid)
    return None if times is None else times[0] + times[1]


def one_upload(work: Path, folder: Path, files: int) -> dict[str, float]:
    with embedded_server(work / f"srv{time.monotonic_ns()}") as backend:
        assert backend.proc is not None
        state = work / f"state{time.monotonic_ns()}"
        env = client_env(backend.url, backend.token, state)
        env.pop("SYNAPSE_TUI_FOREGROUND", None)  # the default: the background engine
        server_before = cpu_times(backend.proc.pid) or (0.0, 0.0)
        out = work / "stdout.txt"
        started = time.perf_counter()
        with out.open("w") as stdout:
            proc = subprocess.Popen(
                [TIME_V, "-f", "%U %S", *cli("upload", str(folder), "--json")],
                env=env,
                stdout=stdout,
                stderr=subprocess.PIPE,
                text=True,
                cwd=REPO_ROOT,
            )
            engine_pid: int | None = None
            engine = (0.0, 0.0)
            lock = state / "engine.lock"
            while proc.poll() is None:  # the engine outlives the command by about a second
                if engine_pid is None and lock.exists():
                    text = lock.read_text().strip()
                    engine_pid = int(text) if text.isdigit() else None
                if engine_pid is not None:
                    engine = cpu_times(engine_pid) or engine
                time.sleep(0.02)
        wall = time.perf_counter() - started
        if engine_pid is not None:
            engine = cpu_times(engine_pid) or engine
        server_after = cpu_times(backend.proc.pid) or server_before
        assert proc.stderr is not None
        err = proc.stderr.read()
        if proc.returncode != 0:
            raise RuntimeError(f"upload exited {proc.returncode}: {err[-2000:]}")
        user, system = err.strip().splitlines()[-1].split()
        summary = [json.loads(line) for line in out.read_text().splitlines() if '"summary"' in line]
        if not summary or summary[-1].get("uploaded") != files:
            raise RuntimeError(f"expected {files} uploads: {summary}")
    return {
        "wall": wall,
        "front": float(user) + float(system),
        "engine": engine[0] + engine[1],
        # Clock ticks as floats: summed in another order, 0.01 came out as 0.00999...
        # (below its own system part); rounded to the microsecond, the parts add up.
        "server": round(sum(server_after) - sum(server_before), 6),
        "engine_sys": engine[1],
        "server_sys": round(server_after[1] - server_before[1], 6),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.bench.cpu_split", description=__doc__)
    p.add_argument("--files", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="cpu-split-"))
    try:
        folder = make_small_files(work / "data", args.files, 20 * 1024)
        warm([folder])
        rows = []
        for i in range(args.rounds):
            row = one_upload(work, folder, args.files)
            rows.append(row)
            per_file = "  ".join(
                f"{k} {v * 1000 / args.files:.2f}" for k, v in row.items() if k != "wall"
            )
            print(
                f"round {i + 1}: wall {row['wall']:.2f} s; CPU ms/file: {per_file}; "
                f"load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
        med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
        total = med["front"] + med["engine"] + med["server"]
        print(
            f"median: wall {med['wall']:.2f} s ({args.files / med['wall']:.0f} files/s); CPU "
            + ", ".join(f"{k} {med[k] * 1000 / args.files:.2f}" for k in ("front", "engine"))
            + f", backend {med['server'] * 1000 / args.files:.2f} ms/file; all "
            f"{total * 1000 / args.files:.2f} ms/file = {total:.2f} s of CPU, "
            f"{total / (os.cpu_count() or 1):.2f} s on {os.cpu_count()} idle cores; of which "
            f"system: engine {med['engine_sys'] * 1000 / args.files:.2f}, backend "
            f"{med['server_sys'] * 1000 / args.files:.2f} ms/file"
        )
    finally:
        # The backends' folders go last, all at once (see case 4: deleting thousands of
        # files between rounds slows the file system's next allocations).
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
