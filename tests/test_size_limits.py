"""A size or rate of absurd digits is one usage line, not an OverflowError traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from synapse_tui.units import parse_rate, parse_size

HUGE = "9" * 400 + "T"


def test_huge_sizes_and_rates_are_refused_as_values() -> None:
    with pytest.raises(ValueError, match="too large"):
        parse_rate(HUGE)
    with pytest.raises(ValueError, match="too large"):
        parse_size("9" * 30 + "P")
    assert parse_size("8191P") == 8191 * 1024**5  # large but meaningful: kept


def test_cli_bwlimit_of_absurd_digits_is_a_usage_error(tmp_path: Path) -> None:
    f = tmp_path / "a.txt"
    f.write_text("x")
    run = subprocess.run(
        [sys.executable, "-m", "synapse_tui.cli", "upload", str(f), "--bwlimit", HUGE],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr and "too large" in run.stderr
