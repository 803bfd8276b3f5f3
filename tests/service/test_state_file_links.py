"""Files the engine keeps in the state folder are never opened through a symbolic link
(or as a FIFO): a link planted in a shared --state-dir is refused in one line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.service.conftest import Env, engine_pid


def _refused(env: Env, tmp_path: Path, name: str) -> str:
    f = tmp_path / "a.bin"
    f.write_bytes(b"x" * 100)
    run = env.run("upload", str(f), timeout=60)
    assert run.returncode == 2, (run.stdout, run.stderr)
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("synapse-tui: error:"), run.stderr
    assert name in lines[0] and "Traceback" not in run.stderr
    assert engine_pid(env.state) is None
    return lines[0]


@pytest.mark.parametrize("name", ["engine.start.lock", "engine.lock", "engine.log"])
@pytest.mark.parametrize("dangling", [False, True])
def test_a_planted_symlink_is_refused_not_followed(
    engine_env: Env, tmp_path: Path, name: str, dangling: bool
) -> None:
    engine_env.state.mkdir(mode=0o700)
    victim = tmp_path / "victim.txt"
    if not dangling:
        victim.write_bytes(b"keep me")
    (engine_env.state / name).symlink_to(victim)
    line = _refused(engine_env, tmp_path, name)
    assert "symbolic link" in line
    if dangling:
        assert not victim.exists()  # not created through the link
    else:
        assert victim.read_bytes() == b"keep me"
    assert (engine_env.state / name).is_symlink()


def test_a_fifo_in_place_of_the_log_is_refused_without_blocking(
    engine_env: Env, tmp_path: Path
) -> None:
    engine_env.state.mkdir(mode=0o700)
    os.mkfifo(engine_env.state / "engine.log", 0o600)
    assert "not a file of yours" in _refused(engine_env, tmp_path, "engine.log")


def test_a_symlinked_socket_is_not_connected_to(engine_env: Env, tmp_path: Path) -> None:
    engine_env.state.mkdir(mode=0o700)
    (engine_env.state / "engine.sock").symlink_to(tmp_path / "elsewhere.sock")
    assert "symbolic link" in _refused(engine_env, tmp_path, "engine.sock")
