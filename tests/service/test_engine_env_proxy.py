"""The proxy a command finds in its own environment (HTTPS_PROXY, HTTP_PROXY, NO_PROXY) is
the one compared with a running engine's and sent to it, not the environment the engine
was started from: an idle engine takes it, a busy one refuses in one line (exit 2)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from synapse_tui.service.spawn import proxy_id
from tests.engine.test_http_proxy import Recorder, forward_proxy
from tests.service.conftest import Env, engine_pid
from tests.service.test_engine_settings_differ import _lasting_engine

__all__ = ["forward_proxy"]  # the fixture, used by name


def _done(env: Env, tmp_path: Path, name: str, extra: dict[str, str]) -> None:
    f = tmp_path / name
    f.write_bytes(name.encode() * 50)
    run = Env(env.server, env.state, {**env.env, **extra}).run("upload", str(f), "--json")
    assert run.returncode == 0, run.stderr
    [done] = [e for e in map(json.loads, run.stdout.splitlines()) if e["event"] == "file_done"]
    assert env.stored(str(done["upload_id"])) == f.read_bytes()


def test_an_idle_engine_follows_each_commands_environment_proxy(
    engine_env: Env, forward_proxy: Recorder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Started from an environment with HTTP_PROXY, the engine uploads the next command's
    file direct when that command's environment has no proxy, and through the proxy again
    for a command whose environment names it."""
    monkeypatch.setenv("HTTP_PROXY", forward_proxy.url)  # the environment the engine inherits
    pid = _lasting_engine(engine_env)
    monkeypatch.delenv("HTTP_PROXY")
    _done(engine_env, tmp_path, "direct.bin", {})
    assert engine_pid(engine_env.state) == pid
    assert forward_proxy.sent == b""  # the starter's proxy was not used
    _done(engine_env, tmp_path, "proxied.bin", {"http_proxy": forward_proxy.url})
    assert engine_pid(engine_env.state) == pid  # the same engine, reconfigured
    origin = engine_env.server.url.removesuffix("/api").encode()
    assert b" " + origin + b"/api/chunked_upload/" in forward_proxy.sent  # absolute form
    seen = len(forward_proxy.sent)
    # NO_PROXY of the command's environment counts too: the loopback origin goes direct.
    _done(
        engine_env,
        tmp_path,
        "bypass.bin",
        {"HTTP_PROXY": forward_proxy.url, "NO_PROXY": "127.0.0.1"},
    )
    assert len(forward_proxy.sent) == seen


def test_a_busy_engine_refuses_another_environment_proxy_without_its_password(
    engine_env: Env, tmp_path: Path
) -> None:
    slow = tmp_path / "slow.bin"
    slow.write_bytes(bytes(300_000))
    run = engine_env.run("upload", str(slow), "--detach", "--bwlimit", "64K", "--chunk-size", "64K")
    assert run.returncode == 0, run.stderr
    with socket.create_server(("127.0.0.1", 0)) as closed:
        dead = f"http://someone:s3cret-pw@127.0.0.1:{closed.getsockname()[1]}"
    f = tmp_path / "a.bin"
    f.write_bytes(b"needs the proxy")
    env = Env(
        engine_env.server,
        engine_env.state,
        {**engine_env.env, "HTTPS_PROXY": dead, "HTTP_PROXY": dead},
    )
    run = env.run("upload", str(f))
    assert run.returncode == 2, (run.stdout, run.stderr)
    assert run.stderr.splitlines() == [
        "synapse-tui: error: the engine of this state folder uses another proxy; wait for it, "
        "stop it (`synapse-tui engine stop`), or use --foreground or another --state-dir"
    ]
    assert "s3cret" not in run.stdout + run.stderr
    status = engine_env.run("engine", "status", "--json")
    assert "s3cret" not in status.stdout + status.stderr
    assert engine_env.run("engine", "stop").returncode == 0


def test_the_digest_is_of_the_routing_not_of_its_spelling() -> None:
    """`off` and an environment without proxies route alike, as do an explicit proxy and
    the same one for both schemes; NO_PROXY or another proxy does not."""
    url = "http://u:p@proxy.example:3128"
    assert proxy_id("off", {}) == proxy_id(None, {"NO_PROXY": "example.org"})
    assert proxy_id(url, {}) == proxy_id(None, {"http_proxy": url, "HTTPS_PROXY": url})
    assert proxy_id(None, {"ALL_PROXY": url}) == proxy_id(url, {})
    assert proxy_id(None, {"HTTPS_PROXY": url}) != proxy_id(url, {})
    assert proxy_id(url, {}) != proxy_id(
        None, {"HTTP_PROXY": url, "HTTPS_PROXY": url, "NO_PROXY": "x"}
    )
    assert "p@" not in proxy_id(url, {}) and len(proxy_id(url, {})) == 16
