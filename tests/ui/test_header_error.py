"""The header while the backend fails: its state and the cause fit 80 columns; the event log
holds the error whole."""

from __future__ import annotations

import time
from typing import Any

import pytest

from synapse_tui.engine.events import (
    BackendState,
    JobQueued,
    JobRetrying,
    JobState,
    JobStateChanged,
)
from synapse_tui.ui.messages import EngineUpdate
from synapse_tui.ui.widgets.backend_banner import short_error

SIZES = [(80, 24), (120, 40)]
FAILING_SINCE = 1_790_000_000.0  # 14:13:20 UTC
ERROR = (
    "cannot connect to https://api.example-synapse.org/api/chunked_upload/"
    "3f1c2a9e-77aa-4b0e-9d1e-5b2c6f0e8a11/: [Errno 111] Connection refused"
)
ENGINE = "engine 4242, runs on when you quit"


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()


def fail(app: Any, error: str = ERROR) -> None:
    """Two uploads to a backend that went away: both wait to retry."""
    events: list[Any] = []
    for n in (1, 2):
        events += [
            JobQueued(n, f"/data/run-{n:02d}/sample-{n:02d}-raw-measurements.tif", 300 << 20),
            JobStateChanged(n, JobState.UPLOADING),
            JobRetrying(n, 3, 12, 0.0, error),
        ]
    events.append(BackendState(False, FAILING_SINCE, error))
    app.dashboard.apply(EngineUpdate(events, {}))


def banner_lines(app: Any) -> list[str]:
    """The header as drawn: its lines, cut where the terminal cuts them."""
    banner = app.dashboard.query_one("#banner")
    return [banner.render_line(y).text.rstrip() for y in range(banner.size.height)]


def test_the_header_gives_each_url_as_its_host() -> None:
    assert short_error(ERROR) == (
        "cannot connect to api.example-synapse.org: [Errno 111] Connection refused"
    )
    assert short_error("cannot connect to http://127.0.0.1:8765/api: refused") == (
        "cannot connect to 127.0.0.1:8765: refused"
    )
    assert short_error("server error 503") == "server error 503"


async def test_at_80_columns_the_header_shows_the_state_and_the_cause(app_factory: Any) -> None:
    app = app_factory(frozen=True, start_engine=False)
    async with app.run_test(size=(80, 24)) as pilot:
        banner = app.dashboard.query_one("#banner")
        banner.engine = ENGINE
        await pilot.pause()
        assert banner.size.height == 1  # nothing known yet: one line
        fail(app)
        await pilot.pause()
        lines = banner_lines(app)
        assert len(lines) == 2 and all(len(line) <= 80 for line in lines)
        assert "✗ failing since 14:13:20" in lines[0]  # before the engine's note, which is cut
        assert "Connection refused" in lines[1] and "api.example-synapse.org" in lines[1]
        whole = [line for line in app.dashboard.log_widget.lines_written if "backend" in line]
        assert whole == [f"--:--:-- backend failing since 14:13:20: {ERROR}"]

        app.dashboard.apply(EngineUpdate([BackendState(True, None)], {}))
        await pilot.pause()
        assert banner.size.height == 1 and "● reachable" in banner_lines(app)[0]
        assert not banner.has_class("-failing")
        assert app.dashboard.log_widget.lines_written[-1].endswith("backend reachable again")


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_failing_header(snap_compare: Any, app_factory: Any, size: tuple[int, int]) -> None:
    class Bridge:  # the dashboard asks; nothing answers
        running = True

        def __getattr__(self, name: str) -> Any:
            return lambda *args: None

    async def run(pilot: Any) -> None:
        pilot.app.bridge = Bridge()
        pilot.app.dashboard.query_one("#banner").engine = ENGINE
        fail(pilot.app)
        await pilot.press("2" if size[0] < 110 else "tab")
        await pilot.pause()

    app = app_factory(frozen=True, start_engine=False)
    assert snap_compare(app, terminal_size=size, run_before=run)
