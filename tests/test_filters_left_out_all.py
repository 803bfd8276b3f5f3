"""When the --include/--exclude rules leave out every file found, the warning says so: "no
files found in data" would send the person looking at a folder that holds files."""

from __future__ import annotations

from pathlib import Path

import pytest

from synapse_tui.cli import main


def test_the_warning_names_the_rules_when_they_left_out_every_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.jpg").write_bytes(b"photo")
    assert main(["scan", str(data), "--exclude", "*.jpg", "--foreground"]) == 0
    err = capsys.readouterr().err
    assert err.count("synapse-tui: warning:") == 1
    assert "--include/--exclude" in err


def test_an_empty_folder_without_rules_is_still_no_files_found(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty").mkdir()
    assert main(["scan", str(tmp_path / "empty"), "--foreground"]) == 0
    err = capsys.readouterr().err
    assert "no files found in" in err and "--include" not in err
