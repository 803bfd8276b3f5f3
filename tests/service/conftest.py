"""Fixtures of the engine service tests: the engine on (no SYNAPSE_TUI_FOREGROUND), the CLI
in subprocesses as users run it, and no engine left running after a test."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from synapse_tui.service.spawn import engine_alive
from tests.harness.embedded import EmbeddedServer


def wait_for(check: Callable[[], object], timeout: float = 20.0, what: str = "") -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        time.sleep(0.05)


def engine_pid(state: Path) -> int | None:
    """The pid a live engine wrote into its lock file, or None."""
    if not engine_alive(state):
        return None
    with contextlib.suppress(OSError, ValueError):
        return int((state / "engine.lock").read_text().strip())
    return None


@dataclass
class Env:
    server: EmbeddedServer
    state: Path
    env: dict[str, str]

    def run(
        self, *args: str, timeout: float = 60, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "synapse_tui.cli", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
        )

    def start(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "synapse_tui.cli", *args],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )

    def upload_info(self, upload_id: str) -> dict[str, Any]:
        url = f"{self.server.url}/chunked_upload/{upload_id}/"
        answer: dict[str, Any] = httpx.get(url, headers=self.server.headers()).json()
        return answer

    def stored(self, upload_id: str) -> bytes:
        info = self.upload_info(upload_id)
        return httpx.get(str(info["file"]), headers=self.server.headers()).content


@pytest.fixture
def engine_env(
    embedded_server: EmbeddedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Env]:
    monkeypatch.delenv("SYNAPSE_TUI_FOREGROUND", raising=False)
    state = tmp_path / "state"
    monkeypatch.setenv("SYNAPSE_TUI_STATE_DIR", str(state))
    env = dict(os.environ, SYNAPSE_HOST=embedded_server.url)
    env["SYNAPSE_ACCESS_TOKEN"] = embedded_server.token
    env.pop("SYNAPSE_TUI_FOREGROUND", None)
    yield Env(embedded_server, state, env)
    pid = engine_pid(state)
    if pid is not None:  # the test's own engine; a test that leaves one says so by failing
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
