"""Case 10's machinery on a few hundred files: the rows come out with numbers (no speed is
asserted here; the suite is `python -m tests.bench.run --only 10`)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from tests.bench.cases import Context, Sizes
from tests.bench.dashboard_scale import case_dashboard_million, measure
from tests.bench.run import CASES


def test_the_dashboard_million_case_is_in_the_full_suite() -> None:
    assert CASES[10] is case_dashboard_million
    assert Sizes.full().dashboard_million == 1_000_000


def test_a_small_run_gives_every_row_a_number(tmp_path: Path) -> None:
    sizes = dataclasses.replace(Sizes.quick(), dashboard_presses=6)
    ctx = Context(tmp_path, sizes, rounds=1, sdk=None, sdk_why="not used")
    rows = measure(ctx, 1500)  # enough that keys meet uploads even on a quiet machine
    by_case = {r.case.split()[0]: r for r in rows}
    assert set(by_case) == {"10a", "10b", "10c"}
    for row in rows:
        assert row.ratio is not None and row.ratio > 0, row
        assert row.status in ("PASS", "FAIL"), row
    details = by_case["10c"].details
    assert details["engine_rss_mib"][0] > 0 and details["dashboard_rss_mib"][0] > 0
    assert len(details["key_ms"]) > 0
    assert not list(tmp_path.rglob("*.bin"))  # the generated files are gone
