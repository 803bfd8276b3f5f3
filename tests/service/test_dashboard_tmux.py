"""The dashboard in a real terminal (tmux): its uploads outlive the terminal."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.service.conftest import Env, engine_pid, wait_for
from tests.service.test_headless_engine import events, write

KIB = 1024
pytestmark = pytest.mark.skipif(
    shutil.which("tmux") is None, reason="tmux is not installed (apt-get install -y tmux)"
)


class Tmux:
    """A private tmux server (its own socket), so the test's environment is the panes'."""

    def __init__(self, socket: Path) -> None:
        self.socket = socket

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["tmux", "-S", str(self.socket), *args], capture_output=True, text=True, timeout=30
        )

    def launch(self, env: dict[str, str], *argv: str) -> None:
        names: tuple[str, ...] = (
            "HOME",
            "SYNAPSE_HOST",
            "SYNAPSE_ACCESS_TOKEN",
            "SYNAPSE_TUI_STATE_DIR",
        )
        names += ("SYNAPSE_TUI_CONFIG_DIR", "SYNAPSE_TUI_DATA_DIR", "SYNAPSE_TUI_ENGINE_IDLE")
        assigns = " ".join(f"{k}={shlex.quote(env[k])}" for k in names if k in env)
        command = (
            f"env -u COLUMNS -u LINES {assigns} {shlex.quote(sys.executable)} -m synapse_tui.cli "
            + " ".join(shlex.quote(a) for a in argv)
        )
        self("new-session", "-d", "-s", "dash", "-x", "120", "-y", "40", command)
        self("resize-window", "-t", "dash", "-x", "120", "-y", "40")

    def screen(self) -> str:
        return self("capture-pane", "-t", "dash", "-p").stdout

    def keys(self, *keys: str, literal: bool = False) -> None:
        self("send-keys", "-t", "dash", *(["-l"] if literal else []), *keys)


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Tmux]:
    t = Tmux(tmp_path / "tmux.sock")
    yield t
    t("kill-server")


def job(env: Env) -> dict[str, object]:
    rows = events(env.run("status", "--all", "--json").stdout)
    return rows[0] if rows else {}


def test_uploads_outlive_the_terminal_and_the_limit_stays(
    engine_env: Env, tmux: Tmux, tmp_path: Path
) -> None:
    engine_env.env["SYNAPSE_TUI_ENGINE_IDLE"] = "60"
    folder = tmp_path / "data"
    big = write(folder / "big.bin", 2048 * KIB)
    tmux.launch(engine_env.env, str(folder), "--chunk-size", "64K")
    wait_for(lambda: "big.bin" in tmux.screen(), what="the dashboard")
    wait_for(lambda: "engine " in tmux.screen().splitlines()[0], what="the engine attached")
    tmux.keys("b")
    wait_for(lambda: "Bandwidth limit" in tmux.screen(), what="the limit prompt")
    tmux.keys("256K", literal=True)
    tmux.keys("Enter")
    wait_for(lambda: "limit 256.0 KiB/s" in tmux.screen(), what="the limit shown")
    tmux.keys("u")
    wait_for(lambda: int(str(job(engine_env).get("offset") or 0)) > 0, what="upload start")
    upload_id = str(job(engine_env)["upload_id"])
    pid = engine_pid(engine_env.state)

    tmux("kill-server")  # the terminal goes: the dashboard gets SIGHUP
    seen = int(str(engine_env.upload_info(upload_id)["offset"]))
    wait_for(
        lambda: int(str(engine_env.upload_info(upload_id)["offset"])) > seen,
        what="the offset to advance after the terminal closed",
    )
    wait_for(lambda: job(engine_env).get("state") == "done", timeout=40, what="the upload")
    assert engine_env.stored(upload_id) == big.read_bytes()
    assert engine_pid(engine_env.state) == pid  # the same engine did it all

    tmux.launch(engine_env.env, str(folder))
    wait_for(lambda: "attached to the engine running since" in tmux.screen(), what="attached")
    # The row's state cell, then the name: the column width is the queue's to choose.
    done_row = re.compile(r"✓ done\s+big\.bin")
    wait_for(lambda: done_row.search(tmux.screen()), what="the job shown done")
    assert "limit 256.0 KiB/s" in tmux.screen()
    tmux("kill-server")

    # The limit set by keyboard is the engine's, kept in the journal across its restarts.
    assert engine_env.run("engine", "stop").returncode == 0
    assert engine_pid(engine_env.state) is None
    following = write(folder / "next.bin", 1024 * KIB)  # 4 s at the limit
    run = engine_env.run("upload", str(following), "--detach", "--chunk-size", "64K")
    assert run.returncode == 0, run.stderr
    status = json.loads(engine_env.run("engine", "status", "--json").stdout)
    assert status["running"] and status["pid"] != pid
    assert status["bwlimit"] == 256 * KIB
