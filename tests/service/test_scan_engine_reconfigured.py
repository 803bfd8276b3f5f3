"""An engine scan keeps yielding to the engine's uploads after `configure` rebuilt the
manager: the pacing follows the engine's manager of the moment, not the one (closed) that
was there when the scan began."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from synapse_tui.service import queries
from synapse_tui.service.wire import ScanPage, ScanStart
from tests.engine.fakeserver import FakeServer
from tests.engine.test_scale import tiny_files
from tests.engine.test_scan_pacing import Pauses, held_engine
from tests.service.test_tick_work import Held, until
from tests.test_scan_streamed import pairs


async def test_a_scan_paces_against_the_manager_configure_made_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(queries, "SCAN_AHEAD", 1)  # the scan waits for each page we pull
    pairs(tmp_path / "big", 500)  # 1,000 files: 16 batches, duplicates in the later ones
    tiny_files(tmp_path / "first", 20)
    async with held_engine(tmp_path / "old", Held(FakeServer())) as (old, _):
        pass  # the manager before `configure`: closed, as `configure` leaves it
    held = Held(FakeServer())
    async with held_engine(tmp_path / "state", held) as (m, _):
        service = SimpleNamespace(journal=m.journal, manager=old, clean=str)
        pauses = Pauses()
        monkeypatch.setattr(queries, "pause", pauses)
        peer = cast(Any, SimpleNamespace(scans={}, closed=asyncio.Event()))
        command = ScanStart([str(tmp_path / "big")], None)
        scan_id = queries.start_scan(cast(Any, service), peer, command)["scan"]
        page = await asyncio.wait_for(queries.scan_page(peer, ScanPage(scan_id, 1)), 60)
        assert page["findings"] and not page["done"]  # the scan is under way
        service.manager = m  # `configure`: a new manager, whose uploads now run
        await m.add_paths([str(tmp_path / "first")])
        await until(lambda: held.waiting == 2, "two uploads in flight")
        while not page["done"]:
            page = await asyncio.wait_for(queries.scan_page(peer, ScanPage(scan_id, 500)), 60)
        assert page["files"] == 1_000
        # The batches after the switch yield to the uploads (on r6integ: none did, the
        # pacer asked the closed manager, which runs nothing).
        assert len(pauses.asked) >= 3, pauses.asked
