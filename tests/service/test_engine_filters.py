"""`upload` and `scan` take `--exclude` / `--include` (aws s3's rules), through the
background engine and in the foreground alike: a file left out is neither uploaded nor
recorded, so a later run without the filters takes it."""

from __future__ import annotations

import json
import os
import types
from pathlib import Path
from typing import Any

import pytest

from synapse_tui.engine.errors import ConfigError
from synapse_tui.service.engine_settings import filters_for
from tests.service.conftest import Env, engine_pid

RULES = ("--exclude", "*", "--include", "*.jpg", "--exclude", "raw/*")


def _tree(root: Path) -> dict[str, bytes]:
    files = {
        "img/p1.jpg": b"photo one",
        "img/p1.json": b'{"label": 1}',
        "img/deeper/p2.jpg": b"photo two",
        "raw/r1.jpg": b"raw photo",
        "notes.tmp": b"scratch",
        "top.jpg": b"top photo",
    }
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data + os.urandom(8))
    return {rel: (root / rel).read_bytes() for rel in files}


def _events(stdout: str, kind: str) -> list[dict[str, Any]]:
    evs = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    return [e for e in evs if e["event"] == kind]


@pytest.mark.parametrize("mode", ["engine", "foreground"])
def test_upload_takes_only_what_the_filters_take(
    engine_env: Env, tmp_path: Path, mode: str
) -> None:
    data = tmp_path / "data"
    content = _tree(data)
    extra = ("--foreground",) if mode == "foreground" else ()
    run = engine_env.run("upload", str(data), *RULES, "--json", *extra)
    assert run.returncode == 0, run.stderr
    done = {os.path.relpath(e["path"], data): e for e in _events(run.stdout, "file_done")}
    assert set(done) == {"img/p1.jpg", "img/deeper/p2.jpg", "top.jpg"}
    for rel, event in done.items():
        assert engine_env.stored(event["upload_id"]) == content[rel]
    assert not _events(run.stdout, "file_skipped")  # left out silently, as aws s3 does

    # Nothing of the files left out was recorded: a run without filters takes them.
    again = engine_env.run("upload", str(data), "--json", *extra)
    assert again.returncode == 0, again.stderr
    later = {os.path.relpath(e["path"], data) for e in _events(again.stdout, "file_done")}
    assert later == {"img/p1.json", "raw/r1.jpg", "notes.tmp"}
    assert len(_events(again.stdout, "file_skipped")) == 3  # the three uploaded before


@pytest.mark.parametrize("mode", ["engine", "foreground"])
def test_scan_counts_only_what_the_filters_take(engine_env: Env, tmp_path: Path, mode: str) -> None:
    data = tmp_path / "data"
    _tree(data)
    (data / "img" / "copy.jpg").write_bytes((data / "top.jpg").read_bytes())
    if mode == "engine":  # `scan` uses a running engine; start one with an upload
        started = engine_env.run("upload", str(data / "notes.tmp"), "--detach")
        assert started.returncode == 0, started.stderr
    extra = ("--foreground",) if mode == "foreground" else ()
    run = engine_env.run("scan", str(data), *RULES, "--json", *extra)
    assert run.returncode == 0, run.stderr
    [summary] = _events(run.stdout, "scan")
    assert summary["files"] == 4 and summary["duplicates"] == 1
    named = engine_env.run("scan", str(data / "notes.tmp"), "--exclude", "*.tmp", *extra)
    assert named.returncode == 0 and "no files" in (named.stdout + named.stderr)


def test_a_bad_pattern_is_one_line_before_any_engine_starts(
    engine_env: Env, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    _tree(data)
    for bad in (("--include", ""), ("--exclude", "x" * 2000)):
        run = engine_env.run("upload", str(data), *bad)
        assert run.returncode == 2
        assert run.stderr.startswith("synapse-tui: error:")
        assert len(run.stderr.strip().splitlines()) == 1
    too_many = [arg for i in range(65) for arg in ("--exclude", f"*.{i}")]
    run = engine_env.run("upload", str(data), *too_many)
    assert run.returncode == 2 and "at most 64" in run.stderr
    assert engine_pid(engine_env.state) is None


def test_an_engine_that_would_ignore_the_filters_is_refused() -> None:
    args = types.SimpleNamespace(filters=[(False, "*.tmp")])
    older = {"engine": "synapse-tui", "version": 1}  # an engine of before the feature
    with pytest.raises(ConfigError, match="older than --include/--exclude"):
        filters_for(older, args)
    assert filters_for({"features": ["filters"]}, args) == [["exclude", "*.tmp"]]
    assert filters_for(older, types.SimpleNamespace(filters=[])) == []
