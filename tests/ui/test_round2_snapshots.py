"""Snapshots of the round-2 screens at 80x24 and 120x40: trouble that shows, the progress pane.

Fed synthetic engine events in frozen mode (no engine, no clock in the log), so every run
draws the same screen. Update with `--snapshot-update` after a reviewed change.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from synapse_tui.engine.events import (
    BackendState,
    JobProgress,
    JobQueued,
    JobRetrying,
    JobState,
    JobStateChanged,
    TotalProgress,
)
from synapse_tui.ui.messages import EngineUpdate

SIZES = [(80, 24), (120, 40)]
MiB = 1 << 20
FAILING_SINCE = 1_790_000_000.0  # a fixed instant, shown in UTC


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()


def trouble(app: Any) -> None:
    """Four uploads to a backend that went away: three wait to retry, one was paused."""
    events: list[Any] = []
    for n in range(1, 9):
        events.append(
            JobQueued(n, f"/data/run-{n:02d}/sample-{n:02d}-raw-measurements.tif", 300 * MiB)
        )
    for n in range(1, 3):
        events += [JobStateChanged(n, JobState.DONE)]
    for n in range(3, 7):
        events += [
            JobStateChanged(n, JobState.UPLOADING),
            JobProgress(n, n * 20 * MiB, 300 * MiB, 3.7 * MiB, 78.0),
        ]
    for n in range(3, 6):
        events.append(JobRetrying(n, 3, 12, 0.0, "connection refused"))
    events.append(BackendState(False, FAILING_SINCE, "connection refused"))
    events.append(TotalProgress(660 * MiB, 2400 * MiB, 2, 8, 0.0, None, None, None, stalled=True))
    app.dashboard.apply(EngineUpdate(events, {}))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_backend_down(snap_compare: Any, app_factory: Any, size: tuple[int, int]) -> None:
    class Bridge:  # the dashboard asks; nothing answers
        running = True

        def __getattr__(self, name: str) -> Any:
            return lambda *args: None

    async def run(pilot: Any) -> None:
        pilot.app.bridge = Bridge()
        trouble(pilot.app)
        await pilot.press("2" if size[0] < 110 else "tab")
        pilot.app.dashboard.queue.cursor_row = 5  # job 6, still uploading
        await pilot.press("p")  # it says `pausing…` at once
        await pilot.pause()

    app = app_factory(frozen=True, start_engine=False)
    assert snap_compare(app, terminal_size=size, run_before=run)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_progress_pane(snap_compare: Any, app_factory: Any, size: tuple[int, int]) -> None:
    async def run(pilot: Any) -> None:
        app = pilot.app
        events: list[Any] = [JobQueued(n, f"/data/f{n}.bin", 200 * MiB) for n in range(1, 9)]
        events += [JobStateChanged(n, JobState.DONE) for n in (1, 2, 3)]
        events += [JobStateChanged(n, JobState.UPLOADING) for n in (4, 5, 6, 7)]
        events.append(TotalProgress(700 * MiB, 1600 * MiB, 3, 8, 0.0, None, None, None))
        app.dashboard.apply(EngineUpdate(events, {}))
        throughput = app.dashboard.query_one("#throughput")
        ramp = [n * 8 * MiB for n in range(10)]
        steady = [(60 + (n * 7) % 21) * MiB for n in range(200)]
        throughput.samples.extend(ramp + steady)
        app.dashboard.query_one("#graph").refresh()
        await pilot.press("3" if size[0] < 110 else "tab")
        await pilot.pause()

    app = app_factory(frozen=True, start_engine=False)
    assert snap_compare(app, terminal_size=size, run_before=run)
