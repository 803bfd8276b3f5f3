"""Outside text shows as text: brackets in a backend error or a file name are not markup."""

from __future__ import annotations

import time
from typing import Any

import pytest

from synapse_tui.engine.events import BackendState
from synapse_tui.ui.messages import EngineUpdate
from synapse_tui.ui.widgets.backend_banner import short_error
from tests.ui.conftest import Backend, settings_for


@pytest.fixture
def app(app_factory: Any, backend: Backend) -> Any:
    return app_factory(start_engine=False, settings=settings_for(backend))


@pytest.mark.parametrize("error", ["down [/maintenance] soon", "see [link=http://x]here"])
async def test_a_backend_error_with_brackets_shows_as_given(app: Any, error: str) -> None:
    message = f"server answered 503: {error}"
    async with app.run_test(size=(120, 40)) as pilot:
        banner = app.dashboard.query_one("#banner")
        banner.status = "paused"
        app.dashboard.apply(EngineUpdate([BackendState(False, time.time(), message)], {}))
        await pilot.pause()
        text = str(banner.render())
        # The header gives a URL as its host; the event log has the error whole.
        assert short_error(message) in text and "[paused]" in text
        assert any(message in line for line in app.dashboard.log_widget.lines_written)
        assert app.is_running


async def test_cancelling_a_file_with_brackets_in_its_name_asks_by_its_name(app: Any) -> None:
    from synapse_tui.engine.events import JobProgress, JobQueued, JobState, JobStateChanged
    from synapse_tui.ui.screens.confirm import ConfirmScreen
    from tests.ui.conftest import wait_for
    from tests.ui.test_round2 import FakeBridge, screen_text

    size = 100 << 20
    async with app.run_test(size=(120, 40)) as pilot:
        bridge = app.bridge = FakeBridge()
        app.dashboard.apply(
            EngineUpdate(
                [
                    JobQueued(1, "/data/[red]scan 2.bin", size),
                    JobStateChanged(1, JobState.UPLOADING),
                    JobProgress(1, 10 << 20, size, 1e6, 90.0),
                ],
                {},
            )
        )
        await pilot.press("tab")  # the queue
        await pilot.press("x")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.pause()
        text = screen_text(app)
        assert "Cancel [red]scan 2.bin?" in text
        await pilot.press("y")
        await wait_for(pilot, lambda: ("cancel", (1,)) in bridge.calls)
        assert app.is_running
