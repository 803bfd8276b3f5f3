"""Case 4 runs its ceiling side, a lean stdlib client (`lean_driver.py`), against the
embedded backend beside ours: the files arrive whole, and the row says how fast."""

from __future__ import annotations

import hashlib
from pathlib import Path

from tests.bench.cases import Context, case_small, lean_upload
from tests.bench.support import embedded_server, make_small_files
from tests.bench.test_bench_smoke import tiny


def test_the_lean_client_stores_every_file_whole(tmp_path: Path) -> None:
    folder = make_small_files(tmp_path / "data", 7, 3000)
    with embedded_server(tmp_path / "srv") as backend:
        m = lean_upload(backend, [folder], 7)
    assert m.json_lines()[-1]["bytes"] == 7 * 3000
    files = [p for p in (tmp_path / "srv").rglob("files/*") if p.is_file()]
    stored = sorted(hashlib.md5(p.read_bytes()).hexdigest() for p in files)
    assert stored == sorted(hashlib.md5(p.read_bytes()).hexdigest() for p in folder.iterdir())


def test_case_4_reports_its_ceiling_without_the_sdk(tmp_path: Path) -> None:
    ctx = Context(tmp_path, tiny(), rounds=1, sdk=None, sdk_why="not used by the smoke test")
    rows = case_small(ctx)
    assert [r.case.split()[:2] for r in rows] == [["4", "many"], ["4", "ceiling:"]]
    assert rows[0].status.startswith("skipped:")
    ceiling = rows[1]
    assert ceiling.status == "info" and ceiling.details["lean"][0] > 0
    assert "files/s (synapse-tui: " in ceiling.ours
