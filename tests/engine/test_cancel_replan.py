"""A cancelled file queued again with a collection plan is registered by that plan."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from synapse_tui.engine.collections import CollectionPlan, fetch_collection
from synapse_tui.engine.events import Event, JobState
from synapse_tui.engine.job import Job
from synapse_tui.engine.journal import Journal
from synapse_tui.engine.protocol import Credentials, ProtocolClient
from synapse_tui.engine.scheduler import EngineOptions, UploadManager
from synapse_tui.server import BackgroundServer, ServerConfig

TOKEN = "replan-test-token"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    config = ServerConfig(
        root=tmp_path / "srv", tokens=[TOKEN], collections=[("images", ["image"])]
    )
    with BackgroundServer(config) as srv:
        yield srv.url


async def until(condition: object, what: str, limit: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not condition():  # type: ignore[operator]
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def cancelled_mid_upload(m: UploadManager, path: Path) -> Job:
    """`path` queued (the only file), then cancelled once its upload has begun."""
    await m.add_paths([str(path)])
    await until(lambda: m.jobs and next(iter(m.jobs.values())).upload_url, "an upload")
    job = next(iter(m.jobs.values()))
    m.cancel(job.id)
    await until(lambda: job.state == JobState.CANCELLED, "the cancel")
    return job


async def test_a_cancelled_file_queued_again_takes_the_new_plan(
    server: str, tmp_path: Path
) -> None:
    url = server
    path = tmp_path / "img.jpg"
    path.write_bytes(os.urandom(2 << 20))
    events: list[Event] = []
    client = ProtocolClient(url, Credentials(access_token=TOKEN))
    options = EngineOptions(
        host=url,
        chunk_size=64 * 1024,
        tick=0.05,
        backoff_base=0.01,
        strategy="chunked",
        bwlimit=256 * 1024,
    )
    state = tmp_path / "st"
    async with UploadManager(client, Journal(state), options, [events.append]) as m:
        job = await cancelled_mid_upload(m, path)
        m.set_bwlimit(None)
        plan = CollectionPlan(await fetch_collection(client, 1), spec="image")
        plan.validate()
        await m.add_paths([str(path)], plan=plan)
        await m.wait_idle()
        assert job.state == JobState.DONE, job.last_error
        assert job.steps.collection == 1 and job.steps.unit_id
    stored = Journal(state).get(job.id)
    assert stored is not None and stored.steps.unit_id == job.steps.unit_id
