"""`scan` in-process (--foreground): findings printed as they are found, and nothing held
per file (the duplicate index is in SQLite, the summary's lists are capped)."""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from synapse_tui import reports
from synapse_tui.cli import main
from synapse_tui.engine import scan as scanning


def pairs(folder: Path, count: int, first: int = 0) -> None:
    """`count` distinct contents (from number `first`), each in two files: `count`
    duplicates, `count` keys."""
    for i in range(first, first + count):
        # Subfolders of 500 files: the walker lists (and sorts) a folder at once, a cost
        # of the largest folder, not of the scan (not what these tests measure).
        sub = folder / f"s{i // 250:04d}"
        sub.mkdir(parents=True, exist_ok=True)
        body = f"{i:016d}".encode() * 2
        (sub / f"a{i:06d}.bin").write_bytes(body)
        (sub / f"b{i:06d}.bin").write_bytes(body)


def peak_of_scan(folder: Path) -> int:
    """The Python heap's peak (tracemalloc) while `scan --json` runs over `folder`."""
    shown = sys.stdout
    with open(os.devnull, "w") as sink:
        sys.stdout = sink
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
            assert main(["scan", str(folder), "--json", "--foreground"]) == 0
            return tracemalloc.get_traced_memory()[1] - base
        finally:
            tracemalloc.stop()
            sys.stdout = shown


def test_a_scan_holds_nothing_per_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The summary's lists are capped (PATHS_CAP, tested below): small here, so that both
    # scans fill them and what is left to compare is what grows with the folder.
    monkeypatch.setattr(reports, "PATHS_CAP", 50, raising=False)
    pairs(tmp_path / "small", 500)
    pairs(tmp_path / "large", 2_500)
    small = peak_of_scan(tmp_path / "small")
    large = peak_of_scan(tmp_path / "large")
    # 4,000 more files, 2,000 more duplicates: a dict entry and a list entry each, held
    # until the end, were 2.4 MiB more (some 40 KiB now: the lists stop at PATHS_CAP).
    assert large - small < 256 * 1024, (small, large)


def test_the_summary_keeps_the_first_findings_and_counts_the_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reports, "PATHS_CAP", 10)
    pairs(tmp_path / "d", 25)
    (tmp_path / "d" / "fifo").mkdir()
    os.mkfifo(tmp_path / "d" / "fifo" / "f")  # after the files (sorted by name)
    assert main(["scan", str(tmp_path / "d"), "--json", "--foreground"]) == 0
    *found, summary = [json.loads(ln) for ln in capsys.readouterr().out.splitlines()]
    duplicates = [f for f in found if f["event"] == "duplicate"]
    assert len(duplicates) == summary["duplicates"] == 25  # every one printed
    assert [f for f in found if f["event"] == "skipped"] == [
        {
            "event": "skipped",
            "path": str(tmp_path / "d" / "fifo" / "f"),
            "reason": "not a regular file (FIFO)",
        }
    ]
    assert summary["duplicate_paths"] == [
        {k: v for k, v in f.items() if k != "event"} for f in duplicates[:10]
    ]
    assert len(summary["skipped_paths"]) == summary["skipped"] == 1
    assert summary["paths_left_out"] == 15
    for f in duplicates:  # the first of each pair is the one met first
        assert f["path"].replace("/b", "/a") == f["duplicate_of"]


class Lines(io.StringIO):
    """stdout, readable while the command runs."""


@pytest.mark.parametrize("json_mode", [True, False])
def test_findings_are_printed_before_the_scan_ends(
    json_mode: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pairs(tmp_path / "first", 3)
    pairs(tmp_path / "second", 3, first=3)
    real = scanning.scan
    out = Lines()
    printed_before_the_second_half: list[bool] = []

    async def slow(paths: Any, **kw: Any) -> AsyncIterator[list[Any]]:
        """The first folder, then the second only once a line is out (or 30 s passed)."""
        first, second = paths
        async for batch in real([first], **kw):
            yield batch
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while not out.getvalue() and loop.time() < deadline:
            await asyncio.sleep(0.01)
        printed_before_the_second_half.append(bool(out.getvalue()))
        async for batch in real([second], **kw):
            yield batch

    monkeypatch.setattr(scanning, "scan", slow)
    monkeypatch.setattr(sys, "stdout", out)
    args = ["scan", str(tmp_path / "first"), str(tmp_path / "second"), "--foreground"]
    assert main([*args, "--json"] if json_mode else args) == 0
    monkeypatch.undo()
    assert printed_before_the_second_half == [True]
    lines = out.getvalue().splitlines()
    assert len(lines) == 7  # six duplicates, then the summary
    if json_mode:
        assert json.loads(lines[0])["event"] == "duplicate"
        assert json.loads(lines[-1])["duplicates"] == 6
    else:
        assert lines[0].startswith("duplicate  ") and lines[-1].startswith("12 files")


def test_a_reader_that_leaves_stops_the_scan_without_a_traceback(tmp_path: Path) -> None:
    """`scan | head -1`: the first lines, then a broken pipe: no traceback, and the scan
    stops instead of hashing the rest for nobody (before: a BrokenPipeError traceback)."""
    pairs(tmp_path / "d", 2_000)  # 2,000 duplicate lines: more than a pipe's buffer
    env = {**os.environ, "HOME": str(tmp_path), "SYNAPSE_TUI_STATE_DIR": str(tmp_path / "st")}
    cmd = [sys.executable, "-m", "synapse_tui.cli", "scan", str(tmp_path / "d"), "--foreground"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()  # the reader leaves
    err = proc.stderr.read().decode()
    proc.wait(timeout=120)
    assert first.startswith(b"duplicate  "), first
    assert "Traceback" not in err and "BrokenPipe" not in err, err
