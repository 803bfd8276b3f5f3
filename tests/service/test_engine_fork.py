"""The engine a headless `upload` starts is a fork of it (no new interpreter), and keeps
nothing of the front end's: its own session, stdin /dev/null, output to the log, no other
file of the front end open (the start lock above all), and the next start still works."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from tests.service.conftest import Env, engine_pid, wait_for


def _fds(pid: int) -> dict[int, str]:
    out: dict[int, str] = {}
    for entry in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):  # closed meanwhile
            out[int(entry.name)] = os.readlink(entry)
    return out


def test_the_engine_is_a_clean_fork_of_the_upload_command(engine_env: Env, tmp_path: Path) -> None:
    f = tmp_path / "a.bin"
    # Slow (4 s at the limit): the engine is still up when it is looked at below. A tiny
    # file's engine leaves a second after its upload, which a slow machine can outlast.
    f.write_bytes(os.urandom(256 * 1024))
    run = engine_env.run("upload", str(f), "--detach", "--bwlimit", "64K")
    assert run.returncode == 0, run.stderr
    pid = engine_pid(engine_env.state)
    assert pid is not None
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert b"synapse_tui.cli" in cmdline, cmdline  # forked, not a fresh interpreter
    assert os.getsid(pid) == pid  # its own session: no terminal, no Ctrl-C of ours
    assert Path(f"/proc/{pid}/cwd").resolve() == Path("/")
    fds = _fds(pid)
    log = str(engine_env.state / "engine.log")
    assert fds[0] == os.devnull and fds[1] == log and fds[2] == log, fds
    assert not any(target.endswith("engine.start.lock") for target in fds.values()), fds
    assert "serving" in Path(log).read_text()

    wait_for(lambda: engine_pid(engine_env.state) is None, what="the engine to exit")
    again = engine_env.run("upload", str(f), "--json")  # a new start: the lock is free
    assert again.returncode == 0, again.stderr
    assert '"file_skipped"' in again.stdout
    wait_for(lambda: engine_pid(engine_env.state) is None, what="the second engine to exit")
