"""Case 9's data and registration, without its long uploads."""

from __future__ import annotations

from pathlib import Path

from tests.bench.run import CASES
from tests.bench.scale_cases import TINY, case_million, make_tiny_files


def test_tiny_files_are_distinct_and_spread_over_folders(tmp_path: Path) -> None:
    root = make_tiny_files(tmp_path / "t", 2_500)
    files = sorted(root.rglob("*.bin"))
    assert len(files) == 2_500 and len({f.parent for f in files}) == 3
    assert {f.stat().st_size for f in files} == {TINY}
    assert len({f.read_bytes() for f in files}) == 2_500  # no duplicate is skipped


def test_the_million_case_is_in_the_full_suite() -> None:
    assert CASES[9] is case_million
