"""The header shows server text as text: brackets in a backend's error are not markup."""

from __future__ import annotations

import time
from typing import Any

import pytest

from synapse_tui.engine.events import BackendState
from synapse_tui.ui.messages import EngineUpdate
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
        assert message in text and "[paused]" in text
        assert app.is_running
