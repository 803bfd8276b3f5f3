"""What a client sets by keyboard lives in the engine and in the journal: a job paused
by a client and the concurrency it chose come back when a new engine starts."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from synapse_tui.config import Settings
from synapse_tui.engine.credentials import Credentials
from synapse_tui.service.client import EngineClient, connect
from synapse_tui.service.wire import Add, Control, ListJobs, Resume, Set, Status, Stop
from tests.service.conftest import Env, engine_pid, wait_for
from tests.service.test_headless_engine import write

KIB = 1024


def _settings(env: Env) -> Settings:
    return Settings(
        host=env.server.url,
        credentials=Credentials(access_token=env.server.token),
        state_dir=env.state,
    )


async def _jobs(client: EngineClient) -> list[dict[str, Any]]:
    page = await client.request(ListJobs(limit=10, scope="journal"))
    jobs: list[dict[str, Any]] = page["jobs"]
    return jobs


async def _until(check: Any, what: str, timeout: float = 20.0) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await check()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def test_a_paused_job_and_the_concurrency_survive_an_engine_restart(
    engine_env: Env, tmp_path: Path
) -> None:
    held = write(tmp_path / "held.bin", 1024 * KIB)
    other = write(tmp_path / "other.bin", 1024 * KIB)
    settings = _settings(engine_env)

    async def first() -> int:
        client = await connect(settings, "dashboard")
        try:
            await client.request(Set(concurrency=3, bwlimit=64 * KIB))  # as keys do: kept
            await client.request(
                Add(paths=[str(held), str(other)], follow=False, chunk_size=64 * KIB)
            )
            jobs = await _until(lambda: _two(client), "both jobs queued")
            target = next(j["id"] for j in jobs if j["path"] == str(held))
            await client.request(Control("pause", job=target))
            await _until(lambda: _state(client, target, "paused"), "the job paused")
            await client.request(Stop())
            return int(target)
        finally:
            await client.close()

    async def second(target: int) -> dict[str, Any]:
        client = await connect(settings, "dashboard")  # a new engine
        try:
            await client.request(Resume(follow=False, keep_paused=True))  # as a dashboard does
            other_id = next(j["id"] for j in await _jobs(client) if j["path"] == str(other))
            await _until(lambda: _state(client, other_id, "uploading", "done"), "the other job")
            assert await _state(client, target, "paused")
            status = await client.request(Status())
            await client.request(Stop())
            return status
        finally:
            await client.close()

    target = asyncio.run(first())
    wait_for(lambda: engine_pid(engine_env.state) is None, what="the first engine to exit")
    status = asyncio.run(second(target))
    assert status["concurrency"] == 3 and status["bwlimit"] == 64 * KIB
    wait_for(lambda: engine_pid(engine_env.state) is None, what="the second engine to exit")
    rows = [json.loads(x) for x in engine_env.run("status", "--json").stdout.splitlines()]
    assert {r["id"]: r["state"] for r in rows}[target] == "paused"


async def _two(client: EngineClient) -> list[dict[str, Any]] | None:
    jobs = await _jobs(client)
    return jobs if len(jobs) == 2 else None


async def _state(client: EngineClient, job_id: int, *states: str) -> bool:
    return any(j["id"] == job_id and j["state"] in states for j in await _jobs(client))
