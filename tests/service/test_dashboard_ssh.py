"""The dashboard over a real SSH session (sshd on loopback): the connection drops, the
uploads go on."""

from __future__ import annotations

import io
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.service.conftest import Env, engine_pid, wait_for
from tests.service.test_dashboard_tmux import job
from tests.service.test_headless_engine import write

KIB = 1024
SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
pytestmark = [
    pytest.mark.skipif(
        not (os.path.exists(SSHD) and shutil.which("ssh") and shutil.which("ssh-keygen")),
        reason="needs openssh (sshd, ssh, ssh-keygen)",
    ),
    pytest.mark.skipif(
        not os.path.isdir("/run/sshd"), reason="sshd needs /run/sshd (mkdir -p /run/sshd)"
    ),
    pytest.mark.skipif(os.geteuid() != 0, reason="sshd on loopback needs root here"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """An sshd on 127.0.0.1 that takes one client key; (port, that key)."""
    folder = tmp_path / "ssh"
    folder.mkdir()
    for name in ("host", "client"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(folder / name)], check=True
        )
    shutil.copy(folder / "client.pub", folder / "authorized_keys")
    port = _free_port()
    (folder / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {folder / 'host'}\n"
        f"PidFile {folder / 'pid'}\nAuthorizedKeysFile {folder / 'authorized_keys'}\n"
        "StrictModes no\nUsePAM no\nPermitRootLogin yes\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
    )
    proc = subprocess.Popen(
        [SSHD, "-D", "-e", "-f", str(folder / "sshd_config")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: _listening(port), what="sshd")
        yield port, folder / "client"
    finally:
        proc.terminate()
        proc.wait(10)


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


class Screen:
    """What the remote dashboard wrote, read on a thread (bounded: the last 1 MiB)."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.data = bytearray()
        # bufsize's default: a buffered pipe, whose read1 returns what is there now
        assert isinstance(proc.stdout, io.BufferedReader)
        self._out = proc.stdout
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while chunk := self._out.read1(65536):
            self.data.extend(chunk)
            del self.data[: max(0, len(self.data) - (1 << 20))]

    def has(self, text: bytes) -> bool:
        return text in self.data


def test_uploads_outlive_an_ssh_session_that_drops(
    engine_env: Env, sshd: tuple[int, Path], tmp_path: Path
) -> None:
    port, key = sshd
    folder = tmp_path / "data"
    big = write(folder / "big.bin", 2048 * KIB)
    env = {k: v for k, v in engine_env.env.items() if k.startswith(("SYNAPSE", "HOME"))}
    env["SYNAPSE_TUI_ENGINE_IDLE"] = "60"
    env["TERM"] = "xterm-256color"
    assigns = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    remote = (
        f"stty cols 120 rows 40; cd {shlex.quote(os.getcwd())}; env {assigns} "
        f"{shlex.quote(sys.executable)} -m synapse_tui.cli {shlex.quote(str(folder))} "
        "--chunk-size 64K"
    )
    options = ["BatchMode=yes", "StrictHostKeyChecking=no", "UserKnownHostsFile=/dev/null"]
    argv = ["ssh", "-tt", "-p", str(port), "-i", str(key)]
    for option in options:
        argv += ["-o", option]
    ssh = subprocess.Popen(
        [*argv, "root@127.0.0.1", remote],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert ssh.stdin is not None
    screen = Screen(ssh)
    try:

        def keys(data: bytes) -> None:
            assert ssh.stdin is not None
            ssh.stdin.write(data)
            ssh.stdin.flush()

        wait_for(lambda: screen.has(b"big.bin") and screen.has(b"engine "), what="dashboard")
        keys(b"b")
        wait_for(lambda: screen.has(b"Bandwidth limit"), what="the limit prompt")
        keys(b"256K")
        time.sleep(0.3)  # the input takes the characters before the enter
        keys(b"\r")
        wait_for(lambda: screen.has(b"256.0 KiB/s"), what="the limit set")
        keys(b"u")
        wait_for(lambda: int(str(job(engine_env).get("offset") or 0)) > 0, what="upload start")
        upload_id = str(job(engine_env)["upload_id"])
        pid = engine_pid(engine_env.state)
        ssh.send_signal(signal.SIGKILL)  # the connection drops; sshd hangs up the session
        ssh.wait(10)
        seen = int(str(engine_env.upload_info(upload_id)["offset"]))
        wait_for(
            lambda: int(str(engine_env.upload_info(upload_id)["offset"])) > seen,
            what="the offset to advance after the SSH session dropped",
        )
        wait_for(lambda: job(engine_env).get("state") == "done", timeout=40, what="the upload")
        assert engine_env.stored(upload_id) == big.read_bytes()
        assert engine_pid(engine_env.state) == pid
    finally:
        if ssh.poll() is None:
            ssh.kill()
            ssh.wait(10)
