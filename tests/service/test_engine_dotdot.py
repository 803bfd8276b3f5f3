"""A relative path through a symbolic link and `..` names, through the background engine,
the folder the kernel and `ls` name: the link target's parent, not the current folder (the
engine runs in another folder, so the front end makes the path absolute without folding
`..` away, as the foreground run's journal does)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.service.conftest import Env, engine_pid


def _done(stdout: str) -> list[dict[str, Any]]:
    events = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    return [e for e in events if e["event"] == "file_done"]


@pytest.mark.parametrize("mode", ["engine", "foreground"])
def test_upload_of_link_dotdot_takes_the_link_targets_parent(
    engine_env: Env, tmp_path: Path, mode: str
) -> None:
    target = tmp_path / "far" / "away"
    target.mkdir(parents=True)
    (tmp_path / "far" / "wanted.bin").write_bytes(b"the parent of the link's target")
    here = tmp_path / "here"
    here.mkdir()
    (here / "unwanted.bin").write_bytes(b"the current folder's own file")
    (here / "link").symlink_to(target)
    assert sorted(os.listdir(here / "link" / "..")) == ["away", "wanted.bin"]  # the kernel's
    extra = ("--foreground",) if mode == "foreground" else ()
    run = engine_env.run("upload", "link/..", "--json", *extra, cwd=here)
    assert run.returncode == 0, run.stderr
    done = _done(run.stdout)
    assert [Path(e["path"]).name for e in done] == ["wanted.bin"]
    assert engine_env.stored(done[0]["upload_id"]) == b"the parent of the link's target"


def test_scan_of_link_dotdot_through_the_engine_counts_the_link_targets_parent(
    engine_env: Env, tmp_path: Path
) -> None:
    target = tmp_path / "far" / "away"
    target.mkdir(parents=True)
    (tmp_path / "far" / "a.bin").write_bytes(b"one")
    (tmp_path / "far" / "b.bin").write_bytes(b"two")
    here = tmp_path / "here"
    here.mkdir()
    (here / "c.bin").write_bytes(b"three")
    (here / "link").symlink_to(target)
    # An engine kept busy through the scan (a slow upload): with none running, `scan`
    # runs in this process, and a tiny upload's engine leaves a second after it is done,
    # which a slow machine's next command can come after.
    slow = tmp_path / "slow.bin"
    slow.write_bytes(os.urandom(512 * 1024))
    started = engine_env.run("upload", str(slow), "--detach", "--bwlimit", "64K")
    assert started.returncode == 0, started.stderr
    pid = engine_pid(engine_env.state)
    assert pid is not None
    run = engine_env.run("scan", "link/..", "--json", cwd=here)
    assert run.returncode == 0, run.stderr
    assert engine_pid(engine_env.state) == pid  # the scan went through that engine
    events = [json.loads(line) for line in run.stdout.splitlines() if line.strip()]
    [summary] = [e for e in events if e["event"] == "scan"]
    assert summary["files"] == 2
    assert engine_env.run("engine", "stop").returncode == 0
