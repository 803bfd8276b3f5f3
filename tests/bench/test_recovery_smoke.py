"""Case 9c's machinery on a few hundred files: the kill lands, `resume` recovers and uploads."""

from __future__ import annotations

from pathlib import Path

from tests.bench.cases import Context, Sizes
from tests.bench.recovery_cases import recovery


def test_recovery_after_a_kill_reports_real_numbers(tmp_path: Path) -> None:
    # 1,000 tiny files can all be uploaded before the poll sees them queued (a quiet
    # machine did): 2 KiB/s leaves most of them to `resume`.
    rec = recovery(Context(tmp_path / "work", Sizes.quick(), 1, None, ""), 1000, limit="2K")
    assert rec.rows == 1000  # killed once every file was a journal row
    assert rec.done_before < rec.rows  # killed mid-run: `resume` had work left
    assert rec.seconds > 0 and rec.peak_rss > 0  # `resume` uploaded a file, measured
    assert list((tmp_path / "work").iterdir()) == []  # the generated files are gone
