"""Case 10: the dashboard with a million tiny files queued (issue 21): key press -> frame p95
in the queue pane while they upload, the upload rate against the headless CLI on the same
files, and the peak RSS of the dashboard's process and of the background engine.

The dashboard runs in a process of its own (`python -m tests.bench.dashboard_scale DRIVE`,
the app under `App.run_test`, headless, as the engine's client), so its peak RSS is its
own; the engine's is read from /proc (VmHWM) before it is stopped. Keys j/k go to the
queue pane one every 100 ms on a fixed schedule while files upload, in five bursts spread
over the run (at 0%, 20%, ... 80% of the files done, so most keys meet a long queue;
latency as in case 6a: from the scheduled time to the first frame composed with the cursor
moved). The files are generated on the fly (scale_cases.make_tiny_files) and removed
afterwards.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.bench.cases import (
    Context,
    Row,
    interleave,
    median,
    ours_upload,
    summary_seconds,
    verdict,
)
from tests.bench.support import REPO_ROOT, MiB, client_env, embedded_server, say

INTERVAL = 0.1  # a key every 100 ms, like a held-down key
BURSTS = 5  # bursts of keys, at 0%, 20%, 40%, 60% and 80% of the files done


def vm_hwm(pid: int | str) -> float | None:
    """Peak resident set (MiB) of a live process, from /proc."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


# -- the driver (a process of its own) -----------------------------------------------------


async def _drive(host: str, token: str, state: Path, folder: Path, count: int, presses: int):
    from textual import events

    from synapse_tui.config import Settings
    from synapse_tui.engine.protocol import Credentials
    from synapse_tui.ui.app import SynapseApp
    from synapse_tui.ui.service_bridge import ServiceBridge

    settings = Settings(host=host, credentials=Credentials(access_token=token), state_dir=state)
    app = SynapseApp(settings, str(folder.parent), service=True)
    frames: list[Any] = []
    original = app._display

    def display(screen: Any, renderable: Any) -> None:
        original(screen, renderable)
        done = renderable is not None and len(frames) == 1
        if done and app.dashboard.queue.cursor_row == frames[0]:
            frames.append(time.perf_counter())

    app._display = display  # type: ignore[method-assign]
    latencies: list[float] = []
    totals: list[int] = []  # the queue's length at each key
    held = 0
    async with app.run_test(size=(120, 40)) as pilot:
        deadline = time.monotonic() + 60
        while not isinstance(app.bridge, ServiceBridge):
            if time.monotonic() > deadline:
                raise RuntimeError("the dashboard did not attach to the engine")
            await pilot.pause(0.05)
        bridge = app.bridge
        queue = app.dashboard.queue
        await pilot.press("2")
        engine_pid = bridge.status.get("pid")
        started = time.perf_counter()
        bridge.queue_paths([os.fsencode(folder)])
        # Wait for the upload to get going (the first file finishes): on a quiet machine a
        # few hundred files are gone in a second, so the keys start as early as they can.
        while queue.counts().get("done", 0) < 1:
            await asyncio.sleep(0.05)
        # A first move (untimed) ends following: from then on only the keys move the
        # cursor, so the frame that shows a key's effect is known.
        await pilot.press("j")
        # The keys come in bursts spread over the run (at 0%, 20%, ... 80% of the files
        # done), so the p95 covers the queue at its largest, not only its first seconds.
        per_burst = max(1, presses // BURSTS)
        for burst in range(BURSTS):
            mark = count * burst // BURSTS
            while queue.counts().get("done", 0) < mark:
                if queue.counts().get("failed", 0):
                    raise RuntimeError(f"uploads failed: {queue.counts()}")
                held = max(held, len(queue.rows_by_id))
                await asyncio.sleep(0.1)
            at = time.perf_counter() + INTERVAL
            for i in range(per_burst):
                if queue.counts().get("done", 0) >= count:
                    break
                key = "j" if i % 2 == 0 else "k"
                await asyncio.sleep(max(0.0, at - time.perf_counter()))
                frames.clear()
                frames.append(queue.cursor_row + (1 if key == "j" else -1))
                event = events.Key(key, key)
                event.set_sender(app)
                app._driver.send_message(event)  # type: ignore[union-attr]
                limit = at + 30  # a slow frame is a large number, not an error
                while len(frames) < 2:
                    if time.perf_counter() > limit:
                        raise RuntimeError(
                            f"no frame for {key!r} within 30 s: cursor {queue.cursor_row},"
                            f" wanted {frames[0]}, of {queue.model.total},"
                            f" following {queue.following}, focus {app.focused}"
                        )
                    await asyncio.sleep(0.0005)
                latencies.append(frames[1] - at)
                totals.append(queue.model.total)
                held = max(held, len(queue.rows_by_id))
                at += INTERVAL
        while queue.counts().get("done", 0) < count:
            held = max(held, len(queue.rows_by_id))
            if queue.counts().get("failed", 0):
                raise RuntimeError(f"uploads failed: {queue.counts()}")
            await asyncio.sleep(0.1)
        seconds = time.perf_counter() - started
        engine_rss = vm_hwm(engine_pid) if engine_pid else None
        asked = queue.asker.asked
        await app.shutdown_engine()
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "seconds": seconds,
        "latencies": latencies,
        "queue_at_keys": [min(totals, default=0), max(totals, default=0)],
        "dashboard_rss_mib": own,
        "engine_rss_mib": engine_rss,
        "rows_held_peak": held,
        "windows_asked": asked,
    }


def drive_main(argv: list[str]) -> int:
    host, token, state, folder, count, presses, out = argv
    result = asyncio.run(_drive(host, token, Path(state), Path(folder), int(count), int(presses)))
    Path(out).write_text(json.dumps(result))
    return 0


# -- the case ------------------------------------------------------------------------------


def dashboard_run(ctx: Context, host: str, token: str, folder: Path, count: int) -> dict[str, Any]:
    from tests.bench.dashboard import stop_engine

    work = ctx.fresh("dash-million")
    state = work / "state"
    out = work / "result.json"
    env = client_env(host, token, state)
    env.update(
        SYNAPSE_TUI_CONFIG_DIR=str(work / "config"),
        SYNAPSE_TUI_DATA_DIR=str(work / "data"),
    )
    env.pop("SYNAPSE_TUI_FOREGROUND", None)  # as users run it: the background engine
    args = [host, token, str(state), str(folder), str(count), str(ctx.sizes.dashboard_presses)]
    cmd = [sys.executable, "-m", "tests.bench.dashboard_scale", *args, str(out)]
    try:
        run = subprocess.run(
            cmd, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=6 * 3600
        )
        if run.returncode != 0 or not out.exists():
            raise RuntimeError(f"dashboard driver failed: {run.stderr[-2000:]}")
        return dict(json.loads(out.read_text()))
    finally:
        stop_engine(state, env)  # when the driver failed before stopping it
        shutil.rmtree(work, ignore_errors=True)


def measure(ctx: Context, count: int) -> list[Row]:
    """`count` tiny files: the dashboard and the CLI upload them alternately."""
    from tests.bench.dashboard import p95
    from tests.bench.scale_cases import TINY, make_tiny_files

    ctx.work.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"bench-dash-million-{count}-", dir=ctx.work))
    dash: list[dict[str, Any]] = []
    cli: list[float] = []
    try:
        say(f"data: {count:,} files of {TINY} B (generated, removed after)")
        folder = make_tiny_files(tmp / "files", count)

        def run_dash() -> None:
            with embedded_server(ctx.fresh("srv")) as b:
                dash.append(dashboard_run(ctx, b.url, b.token, folder, count))
            shutil.rmtree(b.root, ignore_errors=True)

        def run_cli() -> None:
            with embedded_server(ctx.fresh("srv")) as b:
                m = ours_upload(ctx, b, [folder], 50 * MiB, count)
            shutil.rmtree(b.root, ignore_errors=True)
            cli.append(count / summary_seconds(m))  # the CLI's own clock, like 6c

        interleave(ctx.rounds, [run_dash, run_cli])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    latencies = [x for d in dash for x in d["latencies"]]
    key_ms = p95(latencies) * 1000 if latencies else float("nan")
    d_rate = median([count / d["seconds"] for d in dash])
    c_rate = median(cli)
    dash_rss = max(d["dashboard_rss_mib"] for d in dash)
    engine_rss = max((d["engine_rss_mib"] or 0) for d in dash)
    details = {
        "files": count,
        "dashboard_files_per_s": [count / d["seconds"] for d in dash],
        "cli_files_per_s": cli,
        "key_ms": [round(x * 1000, 2) for x in latencies],
        "dashboard_rss_mib": [d["dashboard_rss_mib"] for d in dash],
        "engine_rss_mib": [d["engine_rss_mib"] for d in dash],
        "rows_held_peak": [d["rows_held_peak"] for d in dash],
        "queue_at_keys": [d["queue_at_keys"] for d in dash],
        "windows_asked": [d["windows_asked"] for d in dash],
        "load_average": os.getloadavg(),
    }
    label = f"{count:,} files of {TINY} B queued"
    return [
        Row(
            f"10a dashboard key -> frame p95, queue pane, {label} (uploading)",
            f"{key_ms:.1f} ms",
            f"{len(latencies)} j/k",
            key_ms / 50,
            "<= 50 ms",
            verdict(key_ms <= 50),
            details,
        ),
        Row(
            f"10b dashboard upload rate vs headless CLI, {label}",
            f"{d_rate:,.0f} files/s",
            f"{c_rate:,.0f} files/s (CLI)",
            d_rate / c_rate,
            ">= 0.90",
            verdict(d_rate / c_rate >= 0.90),
            details,
        ),
        Row(
            f"10c peak RSS, dashboard process / engine, {label}",
            f"{dash_rss:.0f} MiB / {engine_rss:.0f} MiB",
            "-",
            max(dash_rss, engine_rss) / 300,
            "<= 300 MiB each",
            verdict(dash_rss <= 300 and 0 < engine_rss <= 300),
            details,
        ),
    ]


def case_dashboard_million(ctx: Context) -> list[Row]:
    return measure(ctx, ctx.sizes.dashboard_million)


if __name__ == "__main__":
    raise SystemExit(drive_main(sys.argv[1:]))
