"""A --state-dir deeper than a Unix socket address allows (107 bytes on Linux) still gets
its engine: the socket is bound and reached through /proc/self/fd/N/."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from synapse_tui.service import spawn
from synapse_tui.service.spawn import SUN_PATH_MAX, EngineUnavailable, socket_address
from tests.service.conftest import Env, engine_pid, wait_for


def test_upload_status_and_stop_work_in_a_deep_state_dir(engine_env: Env, tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    assert len(os.fsencode(deep / "engine.sock")) > SUN_PATH_MAX
    engine_env.env["SYNAPSE_TUI_STATE_DIR"] = str(deep)
    try:
        _scenario(engine_env, deep, tmp_path)
    finally:
        pid = engine_pid(deep)
        if pid is not None:
            os.kill(pid, signal.SIGKILL)


def _scenario(engine_env: Env, deep: Path, tmp_path: Path) -> None:
    f = tmp_path / "a.bin"
    f.write_bytes(os.urandom(200_000))
    slow = engine_env.run("upload", str(f), "--detach", "--bwlimit", "64K", "--chunk-size", "64K")
    assert slow.returncode == 0, slow.stderr
    assert engine_pid(deep) is not None and (deep / "engine.sock").exists()
    st = engine_env.run("engine", "status", "--json")
    assert st.returncode == 0 and json.loads(st.stdout)["running"] is True, st.stderr
    jobs = engine_env.run("status", "--json")
    assert [json.loads(x)["path"] for x in jobs.stdout.splitlines()] == [str(f)]
    stop = engine_env.run("engine", "stop")
    assert stop.returncode == 0, stop.stderr
    wait_for(lambda: engine_pid(deep) is None, what="the engine to exit")
    assert not (deep / "engine.sock").exists()
    done = engine_env.run("upload", str(f), "--json")  # a new engine resumes and finishes
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1])["event"] == "summary"


def test_without_proc_a_deep_state_dir_gets_one_clear_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    # The module's seam, not os.path.isdir: that would change for every thread of the process.
    monkeypatch.setattr(spawn, "PROC_FD", str(tmp_path / "no-proc" / "self" / "fd"))
    with (
        pytest.raises(EngineUnavailable, match="too long for the engine's socket"),
        socket_address(deep),
    ):
        pass
