"""`upload` and `resume` through the background engine keep today's contracts (events, exit
codes, Ctrl-C), and leave nothing running when they are done."""

from __future__ import annotations

import hashlib
import json
import os
import signal
from pathlib import Path
from typing import Any

from tests.service.conftest import Env, engine_pid, wait_for

KIB = 1024


def events(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def of(kind: str, evs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in evs if e["event"] == kind]


def write(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(size))
    return path


def test_upload_json_events_and_exit_codes_through_the_engine(
    engine_env: Env, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    files = [write(data / "a.bin", 300 * KIB + 5), write(data / "sub" / "b.bin", 7 * KIB)]
    run = engine_env.run("upload", str(data), "--chunk-size", "64K", "--json")
    assert run.returncode == 0, run.stderr
    evs = events(run.stdout)
    done = {e["path"]: e for e in of("file_done", evs)}
    assert set(done) == {str(f) for f in files}
    for f in files:
        assert done[str(f)]["md5"] == hashlib.md5(f.read_bytes()).hexdigest()
        assert engine_env.stored(done[str(f)]["upload_id"]) == f.read_bytes()
        assert set(done[str(f)]) >= {"event", "path", "size", "md5", "upload_id", "resumed_from"}
    assert len(of("file_queued", evs)) == 2 and len(of("scan", evs)) == 1
    [summary] = of("summary", evs)
    assert summary["uploaded"] == 2 and summary["failed"] == 0 and evs[-1] is summary
    # It ran in the engine, which leaves once its last job and its last client are gone.
    assert "serving" in (engine_env.state / "engine.log").read_text()
    wait_for(lambda: engine_pid(engine_env.state) is None, what="the engine to exit")

    again = engine_env.run("upload", str(data), "--json")
    assert again.returncode == 0
    assert len(of("file_skipped", events(again.stdout))) == 2

    missing = engine_env.run("upload", str(tmp_path / "nope"), "--json")
    assert missing.returncode == 1, missing.stderr  # a failed file: exit 1, as today
    assert of("summary", events(missing.stdout))[0]["failed"] == 1


def test_configuration_errors_exit_2_through_the_engine(engine_env: Env, tmp_path: Path) -> None:
    f = write(tmp_path / "a.bin", 10)
    env = engine_env.env
    env["SYNAPSE_ACCESS_TOKEN"] = "wrong-token"
    bad = engine_env.run("upload", str(f))
    assert bad.returncode == 2
    assert bad.stderr.startswith("synapse-tui: error:") and "wrong-token" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    env.pop("SYNAPSE_HOST")
    env.pop("SYNAPSE_ACCESS_TOKEN")
    none = engine_env.run("upload", str(f))
    assert none.returncode == 2 and "no backend configured" in none.stderr


def test_ctrl_c_pauses_this_commands_files_and_exits_130(engine_env: Env, tmp_path: Path) -> None:
    f = write(tmp_path / "slow.bin", 2048 * KIB)
    proc = engine_env.start("upload", str(f), "--bwlimit", "256K", "--chunk-size", "64K", "--json")
    assert proc.stdout is not None
    line = proc.stdout.readline()  # file_queued: the engine has it
    assert json.loads(line)["event"] == "file_queued"
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "interrupted: 1 unfinished file(s) saved" in err
    # Paused, not running on behind the user's back: the engine leaves, the journal keeps it.
    wait_for(lambda: engine_pid(engine_env.state) is None, what="the engine to exit")
    status = engine_env.run("status", "--json")
    [job] = events(status.stdout)
    assert job["state"] == "paused"
    resumed = engine_env.run("resume", "--json")
    assert resumed.returncode == 0, resumed.stderr
    [done] = of("file_done", events(resumed.stdout))
    assert engine_env.stored(done["upload_id"]) == f.read_bytes()
