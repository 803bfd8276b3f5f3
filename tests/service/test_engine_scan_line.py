"""The scan line of `upload` through the engine says what the in-process one says
(tests/test_cli_usability.py runs those): a missing path is failed, not skipped, and an
empty folder is warned about."""

from __future__ import annotations

import json
from pathlib import Path

from tests.service.conftest import Env


def test_a_missing_path_is_failed_in_the_scan_line_and_the_summary(
    engine_env: Env, tmp_path: Path
) -> None:
    missing = str(tmp_path / "nope.bin")
    run = engine_env.run("upload", missing, "--json")
    assert run.returncode == 1, run.stderr
    lines = [json.loads(ln) for ln in run.stdout.splitlines()]
    [scan] = [e for e in lines if e["event"] == "scan"]
    [summary] = [e for e in lines if e["event"] == "summary"]
    assert (scan["skipped"], scan["failed"]) == (0, 1)
    assert summary["failed"] == 1
    run = engine_env.run("upload", missing)
    assert run.returncode == 1 and "0 skipped, 1 failed" in run.stdout, run.stdout


def test_an_empty_folder_warns(engine_env: Env, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    run = engine_env.run("upload", str(empty))
    assert run.returncode == 0, run.stderr
    assert f"warning: no files found in {empty}" in run.stderr
    full = tmp_path / "full"
    full.mkdir()
    (full / "a.bin").write_bytes(b"a file")
    run = engine_env.run("upload", str(full))
    assert run.returncode == 0 and "warning" not in run.stderr, run.stderr
