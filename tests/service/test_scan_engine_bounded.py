"""`scan` through the engine: paced against the engine's uploads (engine/pacing.py, no
timing: the pauses are counted), nothing held per file, and the client prints each page
of findings as it comes."""

from __future__ import annotations

import asyncio
import json
import tracemalloc
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from synapse_tui.cli import main
from synapse_tui.engine import pacing
from synapse_tui.service import queries
from synapse_tui.service.wire import ScanPage, ScanStart
from tests.engine.fakeserver import ROOT, FakeServer
from tests.engine.test_scale import tiny_files
from tests.engine.test_scan_pacing import BATCH, Pauses, held_engine
from tests.service.test_status_scan_engine import FakeEngine
from tests.service.test_status_scan_engine import fake as fake  # its fixture
from tests.service.test_tick_work import Held, until
from tests.test_scan_streamed import pairs


async def run_scan(service: Any, paths: list[Path], host: str | None) -> dict[str, Any]:
    """A client's scan in this engine, its pages pulled and dropped: the last page."""
    peer = cast(Any, SimpleNamespace(scans={}, closed=asyncio.Event()))
    started = queries.start_scan(service, peer, ScanStart([str(p) for p in paths], host))
    while True:
        page = await asyncio.wait_for(queries.scan_page(peer, ScanPage(started["scan"], 500)), 60)
        if page["done"]:
            return page


async def test_a_scan_pauses_after_each_batch_while_the_engine_uploads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tiny_files(tmp_path / "first", 20)
    tiny_files(tmp_path / "big", 10 * BATCH)
    held = Held(FakeServer())
    async with held_engine(tmp_path / "state", held) as (m, _):
        service = SimpleNamespace(journal=m.journal, manager=m, clean=str)
        pauses = Pauses()
        monkeypatch.setattr(queries, "pause", pauses)
        done = await run_scan(service, [tmp_path / "big"], None)
        assert done["files"] == 10 * BATCH
        assert pauses.asked == []  # nothing uploads: the scan goes flat out
        await m.add_paths([str(tmp_path / "first")])
        await until(lambda: held.waiting == 2, "two uploads in flight")
        # Only 18 queued behind them: the intake would go on; a scan feeds no upload.
        done = await run_scan(service, [tmp_path / "big"], ROOT)
        assert done["files"] == 10 * BATCH
        assert len(pauses.asked) == 10, pauses.asked  # one after each batch
        assert all(0 < s <= pacing.MAX_PAUSE for s in pauses.asked), pauses.asked


async def peak_of_engine_scan(service: Any, folder: Path) -> int:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        done = await run_scan(service, [folder], ROOT)
        assert done["files"] > 0
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


async def test_an_engine_scan_holds_nothing_per_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Findings waiting for the client are bounded by SCAN_AHEAD (tested here small, so
    # that both scans fill it: what is left to compare is what grows with the folder).
    monkeypatch.setattr(queries, "SCAN_AHEAD", 64)
    pairs(tmp_path / "small", 500)
    pairs(tmp_path / "large", 2_500)
    held = Held(FakeServer())
    async with held_engine(tmp_path / "state", held) as (m, _):
        service = SimpleNamespace(journal=m.journal, manager=m, clean=str)
        small = await peak_of_engine_scan(service, tmp_path / "small")
        large = await peak_of_engine_scan(service, tmp_path / "large")
    # 2,000 more distinct files held one entry each in a dict until the scan ended (about
    # 0.55 MiB; some 40 KiB now).
    assert large - small < 256 * 1024, (small, large)


def test_the_client_prints_a_page_before_it_asks_for_the_next(
    fake: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    base = str(tmp_path / "d")
    pages = 0
    printed_by_then: list[str] = []  # stdout when the second page is asked for

    def answer(req: dict[str, Any]) -> dict[str, Any]:
        nonlocal pages
        if req["cmd"] == "scan":
            return {"scan": 1}
        pages += 1
        if pages == 1:
            dup = {"kind": "duplicates", "path": f"{base}/b", "duplicate_of": f"{base}/a"}
            return {"findings": [dup], "done": False}
        printed_by_then.append(capsys.readouterr().out)  # the client waits for this answer
        return {"findings": [], "done": True, "files": 2, "bytes": 20}

    engine: FakeEngine = fake(answer)
    assert main(["scan", base, "--json"]) == 0
    assert pages == 2 and [r["cmd"] for r in engine.requests][-2:] == ["scan_page"] * 2
    [line] = printed_by_then[0].splitlines()
    assert json.loads(line) == {
        "event": "duplicate",
        "path": base + "/b",
        "duplicate_of": base + "/a",
    }
    [summary] = [json.loads(ln) for ln in capsys.readouterr().out.splitlines()]
    assert summary["event"] == "scan" and summary["duplicates"] == 1
