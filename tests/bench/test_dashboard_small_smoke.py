"""Smoke test of case 6d's machinery (the dashboard on a pty, a folder of small files
uploaded through the engine): the row comes out with numbers. Not a timing test."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench.cases import Context
from tests.bench.dashboard_small import case_dashboard_small
from tests.bench.test_bench_smoke import tiny


def test_small_files_row_has_numbers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SYNAPSE_TUI_FOREGROUND", raising=False)  # through the engine, as 6d
    sizes = tiny()
    sizes.small_count, sizes.concurrency_small = 12, 4
    ctx = Context(tmp_path, sizes, rounds=1, sdk=None, sdk_why="not used")
    [row] = case_dashboard_small(ctx)
    assert row.case.startswith("6d ") and "12 x 1 KiB, -j 4" in row.case
    assert row.ratio is not None and row.ratio > 0 and row.status in ("PASS", "FAIL")
    assert row.details["window_bytes"][0] > 0
    state = next((tmp_path / "runs").glob("pty-small-*")) / "state"
    assert "serving" in (state / "engine.log").read_text()  # the engine did the uploads
