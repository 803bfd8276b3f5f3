"""A command naming another --strategy, --retries, --insecure or --ca-bundle than the running
engine's: an idle engine takes it, a busy one refuses in one line; one not named is kept.

tests/service/test_engine_proxy.py does the same for --proxy.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path
from typing import Any

import certifi
import pytest

from synapse_tui.config import Settings
from synapse_tui.engine.credentials import Credentials
from synapse_tui.service.client import connect
from tests.service.conftest import Env, engine_pid


def _lasting_engine(env: Env) -> int:
    """An engine with the default settings that a dashboard has attached to: idle, it waits
    its idle timeout (300 s), not the headless commands' second, for the next command."""
    settings = Settings()
    settings.host = env.server.url
    settings.credentials = Credentials(access_token=env.server.token)
    settings.state_dir = env.state

    async def attach() -> None:
        client = await connect(settings, "dashboard")
        await client.close()

    asyncio.run(attach())
    pid = engine_pid(env.state)
    assert pid is not None
    return pid


def _status(env: Env) -> dict[str, Any]:
    run = env.run("engine", "status", "--json")
    assert run.returncode == 0, run.stderr
    status: dict[str, Any] = json.loads(run.stdout)
    assert status["running"] is True
    return status


def _upload(env: Env, tmp_path: Path, name: str, *args: str) -> None:
    f = tmp_path / name
    f.write_bytes(name.encode() * 100)
    run = env.run("upload", str(f), *args, cwd=tmp_path)
    assert run.returncode == 0, run.stderr


def _bundle(tmp_path: Path, name: str) -> Path:
    """A real PEM file (the engine loads it when it builds its client)."""
    path = tmp_path / name
    shutil.copyfile(certifi.where(), path)
    return path


def _settings(status: dict[str, Any]) -> tuple[object, ...]:
    return (
        status.get("strategy"),
        status.get("retries"),
        status.get("insecure"),
        status.get("ca_bundle"),
    )


def test_an_idle_engine_takes_the_named_settings_and_keeps_the_others(
    engine_env: Env, tmp_path: Path
) -> None:
    """The second upload names all four (the bundle relative to its own folder: the engine
    runs in "/"); the third names none and leaves them as they are; the fourth names one."""
    pid = _lasting_engine(engine_env)
    _upload(engine_env, tmp_path, "a.bin")
    assert _settings(_status(engine_env)) == ("auto", 12, False, None)
    bundle = _bundle(tmp_path, "ca.pem")
    _upload(
        engine_env,
        tmp_path,
        "b.bin",
        "--strategy",
        "chunked",
        "--retries",
        "0",
        "--insecure",
        "--ca-bundle",
        "ca.pem",
    )
    assert engine_pid(engine_env.state) == pid  # the same engine, reconfigured
    taken = ("chunked", 0, True, str(bundle.resolve()))
    assert _settings(_status(engine_env)) == taken
    _upload(engine_env, tmp_path, "c.bin")
    assert _settings(_status(engine_env)) == taken
    _upload(engine_env, tmp_path, "d.bin", "--retries", "3")
    assert _settings(_status(engine_env)) == ("chunked", 3, True, str(bundle.resolve()))
    assert engine_pid(engine_env.state) == pid
    assert engine_env.run("engine", "stop").returncode == 0


def test_an_idle_engine_uploads_with_the_named_strategy(engine_env: Env, tmp_path: Path) -> None:
    """The embedded backend's storage takes no presigned uploads: `--strategy presigned`
    must say so, not upload through the chunked path of the engine's own `auto`."""
    _lasting_engine(engine_env)
    f = tmp_path / "b.bin"
    f.write_bytes(b"presigned or nothing")
    run = engine_env.run("upload", str(f), "--strategy", "presigned")
    assert run.returncode != 0, run.stdout
    assert "--strategy presigned" in run.stderr, run.stderr
    assert engine_env.run("engine", "stop").returncode == 0


def _busy(env: Env, tmp_path: Path) -> None:
    slow = tmp_path / "slow.bin"
    slow.write_bytes(bytes(1_000_000))
    run = env.run("upload", str(slow), "--detach", "--bwlimit", "64K", "--chunk-size", "64K")
    assert run.returncode == 0, run.stderr


TAIL = (
    "; wait for it, stop it (`synapse-tui engine stop`), or use --foreground or another --state-dir"
)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--strategy", "chunked"], "uses --strategy auto (this command: --strategy chunked)"),
        (["--retries", "0"], "uses --retries 12 (this command: --retries 0)"),
        (["--insecure"], "uses TLS verification (this command: --insecure)"),
    ],
)
def test_a_busy_engine_refuses_another_setting_in_one_line(
    engine_env: Env, tmp_path: Path, args: list[str], says: str
) -> None:
    _busy(engine_env, tmp_path)
    f = tmp_path / "a.bin"
    f.write_bytes(b"needs its own settings")
    run = engine_env.run("upload", str(f), *args)
    assert run.returncode == 2, run.stdout
    assert run.stderr.splitlines() == [
        f"synapse-tui: error: the engine of this state folder {says}{TAIL}"
    ]
    status = _status(engine_env)
    assert status["active"] or status["queued"]  # its own upload goes on
    assert _settings(status) == ("auto", 12, False, None)
    assert engine_env.run("engine", "stop").returncode == 0


def test_a_busy_engine_compares_the_ca_bundle_by_resolved_path(
    engine_env: Env, tmp_path: Path
) -> None:
    """Started with a bundle; the same file by a link and by a relative path is taken, a
    copy elsewhere is refused, naming both resolved paths."""
    bundle = _bundle(tmp_path, "ca.pem")
    link = tmp_path / "link.pem"
    os.symlink(bundle, link)
    other = _bundle(tmp_path, "other.pem")
    slow = tmp_path / "slow.bin"
    slow.write_bytes(bytes(1_000_000))
    run = engine_env.run(
        "upload", str(slow), "--detach", "--bwlimit", "64K", "--chunk-size", "64K",
        "--ca-bundle", str(bundle),
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    f = tmp_path / "a.bin"
    f.write_bytes(b"same bundle, other spellings")
    for spelling in (str(link), "ca.pem"):
        run = engine_env.run("upload", str(f), "--force", "--ca-bundle", spelling, cwd=tmp_path)
        assert run.returncode == 0, run.stderr
    run = engine_env.run("upload", str(f), "--force", "--ca-bundle", str(other))
    assert run.returncode == 2, run.stdout
    assert run.stderr.splitlines() == [
        "synapse-tui: error: the engine of this state folder uses another --ca-bundle, "
        f"compared by resolved path ({bundle.resolve()}; this command: {other.resolve()}){TAIL}"
    ]
    assert _status(engine_env)["ca_bundle"] == str(bundle.resolve())
    assert engine_env.run("engine", "stop").returncode == 0
