"""Snapshots at 80x24 and 120x40 of the cancel question and of the event log with long lines.

Frozen mode and synthetic events, as tests/ui/test_round2_snapshots.py; update with
`--snapshot-update` after a reviewed change.
"""

from __future__ import annotations

from typing import Any

import pytest

from synapse_tui.engine.events import (
    JobProgress,
    JobQueued,
    JobState,
    JobStateChanged,
    LogMessage,
)
from synapse_tui.ui.messages import EngineUpdate

SIZES = [(80, 24), (120, 40)]
MiB = 1 << 20
LONG = (
    "cannot connect to https://api.example-synapse.org/api/chunked_upload/"
    "3f1c2a9e-77aa-4b0e-9d1e-5b2c6f0e8a11/: [Errno 111] Connection refused"
)


class Bridge:  # the dashboard asks; nothing answers
    running = True

    def __getattr__(self, name: str) -> Any:
        return lambda *args: None


def jobs() -> list[Any]:
    events: list[Any] = []
    for n in range(1, 6):
        events.append(JobQueued(n, f"/data/run-{n:02d}/sample-{n:02d}-raw.tif", 300 * MiB))
    events += [JobStateChanged(1, JobState.DONE)]
    for n in (2, 3):
        events += [
            JobStateChanged(n, JobState.UPLOADING),
            JobProgress(n, n * 40 * MiB, 300 * MiB, 62 * MiB, 4.0),
        ]
    return events


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_cancel_question(snap_compare: Any, app_factory: Any, size: tuple[int, int]) -> None:
    async def run(pilot: Any) -> None:
        pilot.app.bridge = Bridge()
        pilot.app.dashboard.apply(EngineUpdate(jobs(), {}))
        await pilot.press("2" if size[0] < 110 else "tab")
        pilot.app.dashboard.queue.cursor_row = 2  # job 3: 120 MiB sent
        await pilot.press("x")
        await pilot.pause()

    app = app_factory(frozen=True, start_engine=False)
    assert snap_compare(app, terminal_size=size, run_before=run)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_event_log_long_lines(snap_compare: Any, app_factory: Any, size: tuple[int, int]) -> None:
    async def run(pilot: Any) -> None:
        pilot.app.bridge = Bridge()
        if size[0] < 110:
            await pilot.press("4")
        lines = [
            LogMessage("warning", f"run-0{n}/sample-0{n}-raw.tif: {LONG}; retry 3/12 in 40.0s")
            for n in (2, 3)
        ]
        pilot.app.dashboard.apply(EngineUpdate([*jobs(), *lines], {}))
        await pilot.pause()

    app = app_factory(frozen=True, start_engine=False)
    assert snap_compare(app, terminal_size=size, run_before=run)
