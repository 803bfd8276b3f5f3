"""Smoke test of `python -m tests.bench.cpu_split` on a few files: each process's CPU comes
out as a number (nothing here asserts a speed)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from synapse_tui.service.spawn import engine_alive
from tests.bench.cpu_split import one_upload
from tests.bench.support import TIME_V, make_small_files


def test_one_upload_reports_the_cpu_of_each_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not os.access(TIME_V, os.X_OK):
        pytest.skip(f"{TIME_V} is missing (Debian's `time` package)")
    monkeypatch.delenv("SYNAPSE_TUI_FOREGROUND", raising=False)  # through the engine
    folder = make_small_files(tmp_path / "data", 5, 20 * 1024)
    row = one_upload(tmp_path, folder, 5)
    assert set(row) == {"wall", "front", "engine", "server", "engine_sys", "server_sys"}
    assert 0 <= row["engine_sys"] <= row["engine"] and 0 <= row["server_sys"] <= row["server"], row
    assert row["wall"] > 0 and row["engine"] > 0 and row["front"] > 0, row
    assert row["server"] >= 0, row
    deadline = time.monotonic() + 30  # the engine leaves about a second after the command
    while any(engine_alive(state) for state in tmp_path.glob("state*")):
        assert time.monotonic() < deadline, "the engine did not exit"
        time.sleep(0.05)
