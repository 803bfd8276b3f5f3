"""Smoke test of `python -m tests.bench.server_cpu` on a few files, in both shapes: the
uploads are accepted and the backend's CPU comes out as numbers (no speed asserted)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench.server_cpu import SHAPES, one_round


@pytest.mark.parametrize("shape", SHAPES)
def test_one_round_uploads_and_reports_the_backend_cpu(tmp_path: Path, shape: str) -> None:
    row = one_round(tmp_path, shape, 12, 4, None, False)
    assert set(row) == {"wall", "server", "loop", "threads"}
    assert row["wall"] > 0 and row["loop"] > 0, row
    assert row["server"] >= 0 and row["threads"] >= 0, row
    (root,) = [p for p in tmp_path.glob(f"srv-{shape}-*") if p.is_dir()]
    assert len(list((root / "files").iterdir())) == 12  # every file stored
