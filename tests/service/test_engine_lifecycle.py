"""The engine's life: detach and attach, status and stop, idle exit, a stale socket, two
front ends at once, a client that stops reading, and a SIGKILL."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
from pathlib import Path

import pytest

from synapse_tui.config import Settings
from synapse_tui.engine.credentials import Credentials
from synapse_tui.service.client import connect
from synapse_tui.service.spawn import CLIENT_TIMEOUT_ENV, IDLE_ENV
from synapse_tui.service.wire import Hello, Subscribe, encode
from tests.service.conftest import Env, engine_pid, wait_for
from tests.service.test_headless_engine import events, of, write

KIB = 1024


def job_rows(env: Env) -> list[dict[str, object]]:
    return events(env.run("status", "--all", "--json").stdout)


def test_detach_returns_at_once_and_attach_follows_to_the_end(
    engine_env: Env, tmp_path: Path
) -> None:
    f = write(tmp_path / "a.bin", 768 * KIB)
    run = engine_env.run(
        "upload", str(f), "--detach", "--bwlimit", "256K", "--chunk-size", "64K", "--json"
    )
    assert run.returncode == 0, run.stderr
    detached = events(run.stdout)[-1]
    assert detached["event"] == "detached"
    assert detached["engine_pid"] == engine_pid(engine_env.state)  # still uploading

    status = engine_env.run("engine", "status", "--json")
    [info] = events(status.stdout)
    assert info["running"] and info["jobs"] == 1 and info["bwlimit"] == 256 * KIB

    attach = engine_env.run("attach", "--json")
    assert attach.returncode == 0, attach.stderr
    [done] = of("file_done", events(attach.stdout))
    assert engine_env.stored(done["upload_id"]) == f.read_bytes()
    wait_for(lambda: engine_pid(engine_env.state) is None, what="the engine to exit")
    assert "no engine runs" in engine_env.run("engine", "status").stdout


def test_engine_stop_pauses_at_a_chunk_boundary_and_resume_finishes(
    engine_env: Env, tmp_path: Path
) -> None:
    f = write(tmp_path / "big.bin", 2048 * KIB)
    run = engine_env.run("upload", str(f), "--detach", "--bwlimit", "128K", "--chunk-size", "64K")
    assert run.returncode == 0, run.stderr
    wait_for(lambda: job_rows(engine_env)[0]["offset"], what="a chunk on the server")
    stop = engine_env.run("engine", "stop")
    assert stop.returncode == 0 and "stopped" in stop.stdout
    assert engine_pid(engine_env.state) is None
    [job] = job_rows(engine_env)
    assert job["state"] == "paused"
    server_offset = engine_env.upload_info(str(job["upload_id"]))["offset"]
    assert job["offset"] == server_offset  # what the journal says is what the server has
    resumed = engine_env.run("resume", "--json")
    assert resumed.returncode == 0, resumed.stderr
    [done] = of("file_done", events(resumed.stdout))
    assert done["resumed_from"] >= server_offset > 0
    assert engine_env.stored(done["upload_id"]) == f.read_bytes()


def _settings(env: Env) -> Settings:
    return Settings(
        host=env.server.url,
        credentials=Credentials(access_token=env.server.token),
        state_dir=env.state,
    )


def test_an_engine_a_dashboard_used_waits_its_idle_time_then_exits(
    engine_env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(IDLE_ENV, "3")

    async def visit() -> int:
        client = await connect(_settings(engine_env), "dashboard")
        pid = int(client.status["pid"])
        await client.close()
        return pid

    pid = asyncio.run(visit())
    assert engine_pid(engine_env.state) == pid  # no job, no client: it waits a while
    nice = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])
    # A dashboard came: the engine yields the CPU to its keys, 10 levels below the nice
    # level it started with (this test's own: a suite run under `nice` starts it higher).
    assert nice == min(19, os.getpriority(os.PRIO_PROCESS, 0) + 10)
    wait_for(lambda: engine_pid(engine_env.state) is None, timeout=15, what="idle exit")


def test_a_stale_socket_of_a_dead_engine_is_replaced(engine_env: Env, tmp_path: Path) -> None:
    engine_env.state.mkdir(mode=0o700)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(engine_env.state / "engine.sock"))
    stale.close()  # the file stays, nobody listens: what a SIGKILLed engine leaves
    (engine_env.state / "engine.lock").write_text("999999\n")
    f = write(tmp_path / "a.bin", 10 * KIB)
    run = engine_env.run("upload", str(f), "--json")
    assert run.returncode == 0, run.stderr
    assert len(of("file_done", events(run.stdout))) == 1


def test_two_front_ends_starting_together_get_one_engine(engine_env: Env, tmp_path: Path) -> None:
    procs = []
    for name in ("a", "b"):
        f = write(tmp_path / f"{name}.bin", 256 * KIB)
        procs.append(engine_env.start("upload", str(f), "--detach", "--bwlimit", "256K", "--json"))
    pids = set()
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        pids.add(events(out)[-1]["engine_pid"])
    assert len(pids) == 1
    log = (engine_env.state / "engine.log").read_text()
    assert log.count("serving") == 1
    attach = engine_env.run("attach", "--json")
    assert len(of("file_done", events(attach.stdout))) <= 2  # some may be done already
    wait_for(lambda: engine_pid(engine_env.state) is None, what="the engine to exit")
    assert sum(1 for row in job_rows(engine_env) if row["state"] == "done") == 2


def test_a_client_that_stops_reading_is_dropped_and_the_engine_goes_on(
    engine_env: Env, tmp_path: Path
) -> None:
    engine_env.env[CLIENT_TIMEOUT_ENV] = "1"
    slow = write(tmp_path / "slow.bin", 512 * KIB)  # keeps the engine up meanwhile
    run = engine_env.run("upload", str(slow), "--detach", "--bwlimit", "128K")
    assert run.returncode == 0, run.stderr
    stuck = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.connect(str(engine_env.state / "engine.sock"))
    stuck.sendall(encode(Hello(role="attach").to_wire(1)) + encode(Subscribe().to_wire(2)))
    try:
        many = tmp_path / "many"
        for i in range(1000):  # ~600 KB of events: more than the socket buffers hold
            write(many / f"{i}.bin", 16)
        upload = engine_env.run("upload", str(many), "--json", "-j", "16", timeout=120)
        assert upload.returncode == 0, upload.stderr
        assert len(of("file_done", events(upload.stdout))) == 1000
        log = engine_env.state / "engine.log"
        wait_for(lambda: "(attach) dropped" in log.read_text(), what="the reader dropped")
    finally:
        stuck.close()


def test_an_engine_killed_with_sigkill_is_replaced_and_resumes_from_the_journal(
    engine_env: Env, tmp_path: Path
) -> None:
    chunk = 64 * KIB
    f = write(tmp_path / "big.bin", 2048 * KIB)
    args = ("upload", str(f), "--chunk-size", "64K")
    run = engine_env.run(*args, "--detach", "--bwlimit", "256K")
    assert run.returncode == 0, run.stderr
    wait_for(lambda: int(str(job_rows(engine_env)[0]["offset"])) >= 4 * chunk, what="chunks")
    pid = engine_pid(engine_env.state)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: engine_pid(engine_env.state) is None, what="the kill")
    [job] = job_rows(engine_env)
    on_server = int(str(engine_env.upload_info(str(job["upload_id"]))["offset"]))
    again = engine_env.run(*args, "--json")
    assert again.returncode == 0, again.stderr
    [done] = of("file_done", events(again.stdout))
    # Resumed from the server's offset: only the chunk that was in flight is sent again.
    assert done["resumed_from"] >= on_server >= 4 * chunk
    assert done["upload_id"] == job["upload_id"]
    assert engine_env.stored(done["upload_id"]) == f.read_bytes()
    assert json.loads(engine_env.run("engine", "status", "--json").stdout)["running"] in (
        True,
        False,
    )


def test_configure_gives_the_engine_new_credentials_after_a_refusal(
    engine_env: Env, tmp_path: Path
) -> None:
    from synapse_tui.service.client import Refused
    from synapse_tui.service.wire import Add, Configure

    f = write(tmp_path / "a.bin", 100 * KIB)
    wrong = _settings(engine_env)
    wrong.credentials = Credentials(access_token="not-the-token")

    async def scenario() -> dict[str, object]:
        client = await connect(wrong, "dashboard")
        done: asyncio.Future[dict[str, object]] = asyncio.get_running_loop().create_future()

        def on_event(obj: dict[str, object]) -> None:
            if obj.get("event") == "batch_done" and not done.done():
                done.set_result(obj)

        client.on_event = on_event
        try:
            with pytest.raises(Refused) as refused:
                await client.request(Add(paths=[str(f)]))
            assert refused.value.kind == "config" and "not-the-token" not in str(refused.value)
            status = await client.request(Configure(engine_env.server.url, engine_env.server.token))
            assert status["host"] == engine_env.server.url
            await client.request(Add(paths=[str(f)]))
            return await asyncio.wait_for(done, 30)
        finally:
            await client.close()

    finished = asyncio.run(scenario())
    assert finished["left"] == 0 and finished["stopped"] is None
    rows = job_rows(engine_env)
    assert [r["state"] for r in rows] == ["done"]
    assert engine_env.stored(str(rows[0]["upload_id"])) == f.read_bytes()
