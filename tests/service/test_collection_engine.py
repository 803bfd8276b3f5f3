"""A collection `upload` through the background engine ends once its data units exist: its
jobs waiting for their unit are journal rows in the engine, not jobs held in memory (nor
an entry each in the router)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from synapse_tui.engine.events import JobState
from synapse_tui.engine.journal import Journal
from synapse_tui.engine.protocol import Credentials, ProtocolClient
from synapse_tui.engine.scheduler import EngineOptions, UploadManager
from synapse_tui.service.routing import Router
from tests.engine.test_collection_bounded import gate_units, stem_plan
from tests.engine.test_collections import TOKEN, server
from tests.service.conftest import Env
from tests.service.test_tick_work import in_batch, until

__all__ = ["server"]  # the fixture, imported for these tests


def unit_count(env: Env) -> int:
    answer = httpx.get(
        f"{env.server.url}/data_units/",
        params={"data_collection": "1", "page_size": "1"},
        headers=env.server.headers(),
    ).json()
    return int(answer["count"])


def pairs(data: Path, prefix: str, n: int) -> Path:
    """`n` stems in `data`, each an image and its JSON label."""
    data.mkdir()
    for i in range(n):
        (data / f"{prefix}{i:03}.jpg").write_bytes(b"picture %d" % i * (1 + i))
        (data / f"{prefix}{i:03}.json").write_text(json.dumps({"label": i}))
    return data


def test_an_upload_waits_for_its_units(engine_env: Env, tmp_path: Path) -> None:
    n = 12
    data = pairs(tmp_path / "data", "c", n)
    before = unit_count(engine_env)
    args = ["--collection", "1", "--group-by-stem", "--spec-map", "jpg=image,json=meta"]
    done = engine_env.run("upload", str(data), *args, "--json", timeout=120)
    assert done.returncode == 0, done.stderr
    summary = [json.loads(line) for line in done.stdout.splitlines() if line.strip()][-1]
    assert summary["event"] == "summary" and summary["uploaded"] == 2 * n, summary
    assert summary["units"] == n, summary  # told before the client ends
    assert unit_count(engine_env) - before == n  # made before the client ends
    engine_env.run("engine", "stop")


async def test_a_batch_waiting_for_its_units_is_unsettled_with_no_entry_per_job(
    server: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _ = server
    gate = gate_units(monkeypatch)
    n = 10
    data = pairs(tmp_path / "data", "u", n)
    plan = await stem_plan(url)
    client = ProtocolClient(url, Credentials(access_token=TOKEN))
    options = EngineOptions(host=url, chunk_size=64 * 1024, tick=0.05, backoff_base=0.01)
    m = UploadManager(client, Journal(tmp_path / "st"), options)
    router = Router()
    router.manager = m
    m.subscribe(router)
    m.on_held = router.adopt
    async with m:
        batch = router.new_batch(None, 1)
        await in_batch(batch, lambda: m.add_paths([str(data)], plan=plan))
        await until(
            lambda: m.counters.count[JobState.REGISTERING] == 2 * n and not m.active(),
            "every file registered, waiting for its unit",
        )
        assert not router.settled(batch)  # its units are still to come
        assert not router.active and not batch.running  # rows, not an entry each
        assert batch.counters.count[JobState.REGISTERING] == 2 * n
        gate.set()
        await m.wait_idle()
        assert router.settled(batch)
        assert batch.counters.count[JobState.DONE] == 2 * n
    m.journal.close()
