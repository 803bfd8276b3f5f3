"""Smoke test of the benchmark machinery on tiny inputs: rows come out with numbers.

Not a timing test: nothing here asserts a speed. It runs with the rest of the tests;
the suite itself is `python -m tests.bench.run`.
"""

from __future__ import annotations

from pathlib import Path

from tests.bench.cases import Context, Sizes, case_large, case_scan
from tests.bench.run import table
from tests.bench.support import MiB


def tiny() -> Sizes:
    return Sizes(
        scan_files=2,
        scan_file_size=2 * MiB,
        large=4 * MiB,
        memory=[(4 * MiB, 1 * MiB)],
        small_count=5,
        small_size=1024,
        resume=4 * MiB,
        resume_chunk=1 * MiB,
        chunk=1 * MiB,
        concurrency_small=2,
    )


def test_scan_and_upload_rows_have_numbers(tmp_path: Path) -> None:
    ctx = Context(tmp_path, tiny(), rounds=1, sdk=None, sdk_why="not used by the smoke test")
    rows = case_scan(ctx) + case_large(ctx)
    by_case = {r.case.split()[0]: r for r in rows}
    # 1b compares with md5sum (coreutils); 2b is our upload to the embedded server vs md5sum.
    for key in ("1b", "2b"):
        row = by_case[key]
        assert row.ratio is not None and row.ratio > 0, row
        assert row.status in ("PASS", "FAIL"), row
    # Without the SDK its row is marked skipped, with the reason, never silently dropped.
    assert by_case["2a"].status.startswith("skipped:")
    text = table(rows)
    assert "| case" in text and "2b same upload, whole command, vs md5sum rate" in text
