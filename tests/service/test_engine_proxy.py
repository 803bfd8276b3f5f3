"""`--proxy` reaches the background engine: the one it starts, and an idle one already running.

In-process (--foreground) uploads honour --proxy since the proxy work (tests/engine/
test_http_proxy.py); these run the default mode, where the engine makes the requests.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from synapse_tui.config import Settings
from synapse_tui.service.spawn import SETTINGS_ENV, settings_from_env, settings_to_env
from tests.engine.test_http_proxy import Recorder, forward_proxy
from tests.service.conftest import Env, engine_pid
from tests.service.test_engine_settings_differ import _lasting_engine

__all__ = ["forward_proxy"]  # the fixture, used by name


def _dead_proxy() -> str:
    with socket.create_server(("127.0.0.1", 0)) as closed:
        return f"http://127.0.0.1:{closed.getsockname()[1]}"


def _done(env: Env, *args: str) -> dict[str, object]:
    run = env.run(*args, "--json")
    assert run.returncode == 0, run.stderr
    [done] = [e for e in map(json.loads, run.stdout.splitlines()) if e["event"] == "file_done"]
    return done


def test_the_proxy_and_strategy_cross_to_the_engine_it_starts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = Settings()
    settings.proxy, settings.strategy = "http://proxy.example:3128", "chunked"
    monkeypatch.setenv(SETTINGS_ENV, settings_to_env(settings))
    back = settings_from_env()
    assert (back.proxy, back.strategy) == ("http://proxy.example:3128", "chunked")


def test_an_engine_started_with_a_dead_proxy_uploads_nothing(
    engine_env: Env, tmp_path: Path
) -> None:
    f = tmp_path / "a.bin"
    f.write_bytes(b"through the proxy or not at all")
    run = engine_env.run("upload", str(f), "--proxy", _dead_proxy())
    assert run.returncode != 0, run.stdout  # the engine went around the proxy
    assert "unreachable" in run.stderr or "proxy" in run.stderr, run.stderr


def test_an_idle_engine_takes_the_commands_proxy(
    engine_env: Env, forward_proxy: Recorder, tmp_path: Path
) -> None:
    """A first upload starts the engine without a proxy; the next one names a proxy: the
    idle engine is reconfigured and its requests go through the proxy; a third without
    --proxy goes direct again."""
    # An engine a dashboard attached to waits its idle timeout between the commands (one
    # that served only headless commands leaves a second after its last job).
    pid = _lasting_engine(engine_env)
    f = tmp_path / "a.bin"
    f.write_bytes(b"first, direct")
    _done(engine_env, "upload", str(f))
    assert engine_pid(engine_env.state) == pid
    assert forward_proxy.sent == b""
    g = tmp_path / "b.bin"
    g.write_bytes(b"second, through the proxy")
    done = _done(engine_env, "upload", str(g), "--proxy", forward_proxy.url)
    assert engine_pid(engine_env.state) == pid  # the same engine, reconfigured
    assert engine_env.stored(str(done["upload_id"])) == b"second, through the proxy"
    origin = engine_env.server.url.removesuffix("/api").encode()
    assert b" " + origin + b"/api/chunked_upload/" in forward_proxy.sent  # absolute form
    seen = len(forward_proxy.sent)
    h = tmp_path / "c.bin"
    h.write_bytes(b"third, direct again")
    _done(engine_env, "upload", str(h))
    assert len(forward_proxy.sent) == seen


def test_a_busy_engine_refuses_another_proxy_in_one_line(engine_env: Env, tmp_path: Path) -> None:
    """Its uploads would go on without the proxy the command names: refused, as another
    host is, and the engine's own uploads are left alone."""
    slow = tmp_path / "slow.bin"
    slow.write_bytes(bytes(300_000))
    run = engine_env.run("upload", str(slow), "--detach", "--bwlimit", "64K", "--chunk-size", "64K")
    assert run.returncode == 0, run.stderr
    f = tmp_path / "a.bin"
    f.write_bytes(b"needs the proxy")
    run = engine_env.run("upload", str(f), "--proxy", _dead_proxy())
    assert run.returncode == 2
    assert run.stderr.splitlines() == [
        "synapse-tui: error: the engine of this state folder uses another proxy; wait for it, "
        "stop it (`synapse-tui engine stop`), or use --foreground or another --state-dir"
    ]
    assert engine_env.run("engine", "stop").returncode == 0
