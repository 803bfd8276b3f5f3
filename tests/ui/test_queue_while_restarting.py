"""Entries queued (`u`) while the in-thread engine restarts go to it once it is ready,
even when the restart is asked again meanwhile (saving the settings twice): the second
restart must not drop what the first one was holding for the engine."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from synapse_tui.config import Settings
from synapse_tui.engine.credentials import Credentials
from synapse_tui.ui.app import SynapseApp
from tests.ui.conftest import wait_for


class StubBridge:
    """The engine the restart launches: what it was asked to queue."""

    window = None
    stopped = False

    def __init__(self) -> None:
        self.queued: list[list[bytes]] = []

    def queue_paths(self, targets: list[bytes], plan: Any = None) -> None:
        self.queued.append(list(targets))

    def stop(self) -> None:
        self.stopped = True


async def test_u_during_two_restarts_reaches_the_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "a.bin").write_bytes(b"x" * 100)
    stub = StubBridge()
    ready = threading.Event()  # the engine thread is slow to start

    def launch(self: SynapseApp) -> tuple[Any, str | None]:
        assert ready.wait(30)
        return stub, None

    monkeypatch.setattr(SynapseApp, "_launch_bridge", launch)
    settings = Settings(host="http://127.0.0.1:1", credentials=Credentials(access_token="t"))
    app = SynapseApp(settings, str(folder), start_engine=False, progress_interval=0.05)
    async with app.run_test(size=(120, 40)) as pilot:
        browser = app.dashboard.browser
        await wait_for(pilot, lambda: bool(browser.targets()))
        app._restart_engine()  # the settings saved after a fatal stop
        await wait_for(pilot, lambda: app.waiting is not None)
        await pilot.press("u")
        assert app.waiting and len(app.waiting) == 1
        app._restart_engine()  # saved again while the engine still starts
        await pilot.pause(0.1)
        ready.set()
        await wait_for(pilot, lambda: app.bridge is stub)
        await wait_for(pilot, lambda: app.waiting is None)
        # On r6integ the second restart reset the list: the entry was never queued, and
        # no line said so.
        assert stub.queued == [[bytes(folder / "a.bin")]]
    assert stub.stopped  # the app's end stopped the engine it had
