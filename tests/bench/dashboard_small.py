"""Case 6d: the dashboard's terminal output while many small files upload through the engine."""

from __future__ import annotations

import shutil
from typing import Any

from tests.bench.cases import Context, Row, case_dashboard, fmt_size, median, verdict
from tests.bench.support import embedded_server, make_small_files, say, warm

TARGET_KBS = 50.0  # issue 20: <= 50 KB/s at 120x40, 2,000 small files at -j 16 included


def case_dashboard_all(ctx: Context) -> list[Row]:
    """Case 6: 6a-6c (eight large files), then 6d."""
    return case_dashboard(ctx) + case_dashboard_small(ctx)


def case_dashboard_small(ctx: Context) -> list[Row]:
    """`synapse-tui DIR` on a pty of 120x40; `u` on a folder of `small_count` files of
    `small_size`, `-j concurrency_small`; the bytes it writes from `u` until the journal
    holds them all done."""
    from tests.bench.dashboard import pty_run

    s = ctx.sizes
    key = "dash-small"
    if key not in ctx._files:
        say(f"data: {s.small_count} files of {fmt_size(s.small_size)} (6d)")
        parent = ctx.work / "data" / key  # the browser lists one entry: the folder
        make_small_files(parent / "small", s.small_count, s.small_size)
        ctx._files[key] = parent
    parent = ctx._files[key]
    warm([parent])
    runs: list[Any] = []
    for _ in range(ctx.rounds):
        with embedded_server(ctx.fresh("srv")) as b:
            runs.append(
                pty_run(
                    b,
                    parent,
                    ctx.fresh("pty-small"),
                    s.chunk,
                    s.small_count,
                    concurrency=s.concurrency_small,
                    select_each=False,
                )
            )
        shutil.rmtree(b.root, ignore_errors=True)
    kbs = median([r.rate for r in runs]) / 1000
    label = f"{s.small_count} x {fmt_size(s.small_size)}, -j {s.concurrency_small}"
    return [
        Row(
            f"6d dashboard terminal output, many small files ({label}, engine, pty 120x40)",
            f"{kbs:,.1f} KB/s",
            "134 KB/s before (issue 20)",
            kbs / TARGET_KBS,
            f"<= {TARGET_KBS:.0f} KB/s",
            verdict(kbs <= TARGET_KBS),
            {
                "rates_bps": [round(r.rate) for r in runs],
                "window_s": [round(r.seconds, 2) for r in runs],
                "window_bytes": [r.out_bytes for r in runs],
                "session_bytes": [r.total_bytes for r in runs],
                "files_per_s": [round(s.small_count / r.seconds, 1) for r in runs],
            },
        )
    ]
