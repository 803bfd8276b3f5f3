"""The engine's socket: same user only, private files, no token in argv or in the log."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest

from synapse_tui.service.wire import Hello, encode
from tests.service.conftest import Env, engine_pid
from tests.service.test_headless_engine import write

KIB = 1024


def test_private_socket_and_no_token_in_argv_or_log(engine_env: Env, tmp_path: Path) -> None:
    f = write(tmp_path / "a.bin", 512 * KIB)
    run = engine_env.run("upload", str(f), "--detach", "--bwlimit", "128K", "--chunk-size", "64K")
    assert run.returncode == 0, run.stderr
    pid = engine_pid(engine_env.state)
    assert pid is not None
    state = engine_env.state
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert stat.S_IMODE((state / "engine.sock").stat().st_mode) == 0o600
    assert stat.S_IMODE((state / "engine.log").stat().st_mode) == 0o600
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    assert engine_env.server.token.encode() not in cmdline
    assert engine_env.run("engine", "stop").returncode == 0
    log = (state / "engine.log").read_text()
    assert "serving" in log and engine_env.server.token not in log


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to connect as another user")
def test_a_client_of_another_user_is_refused(engine_env: Env, tmp_path: Path) -> None:
    f = write(tmp_path / "a.bin", 256 * KIB)
    run = engine_env.run("upload", str(f), "--detach", "--bwlimit", "64K")
    assert run.returncode == 0, run.stderr
    os.chmod(engine_env.state, 0o755)  # let the other user reach the socket file at all
    os.chmod(engine_env.state / "engine.sock", 0o777)  # ... and connect: SO_PEERCRED decides
    read, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe
        os.close(read)
        answer = b"error"
        try:
            os.chdir(engine_env.state)  # as root: the test's folders above are 0700
            os.setgid(65534)
            os.setuid(65534)
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(5)
                sock.connect("engine.sock")
                sock.sendall(encode(Hello(role="attach").to_wire(1)))
                answer = sock.recv(4096) or b"closed"
        except (ConnectionResetError, BrokenPipeError):
            answer = b"closed"  # the engine aborted the connection
        except OSError as exc:
            answer = f"oserror {exc}".encode()
        os.write(write_end, answer)
        os._exit(0)
    os.close(write_end)
    got = os.read(read, 4096)
    os.waitpid(child, 0)
    os.close(read)
    assert got == b"closed", got  # connected, then dropped without a reply
    os.chmod(engine_env.state, 0o700)
