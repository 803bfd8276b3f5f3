"""`scan --help` describes the `--json` output that `scan --json` prints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from synapse_tui.cli import main


def test_scan_json_help_says_one_object_per_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "a.bin").write_bytes(b"same content")
    (folder / "b.bin").write_bytes(b"same content")
    assert main(["scan", str(folder), "--json", "--foreground"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(ln)["event"] for ln in lines] == ["duplicate", "scan"]
    with pytest.raises(SystemExit):
        main(["scan", "x", "--help"])
    [help_line] = [
        ln for ln in capsys.readouterr().out.splitlines() if ln.strip().startswith("--json")
    ]
    # Several objects are printed: the help must not promise a single one (scripts read it).
    assert "per line" in help_line, help_line
