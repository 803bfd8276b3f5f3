"""A dashboard attaching (its `resume` keeps a client's pauses) pauses nothing the engine
is running: remembered pauses are for the jobs a restarted engine loads from the journal."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from synapse_tui.config import Settings
from synapse_tui.engine.credentials import Credentials
from synapse_tui.service.client import connect
from synapse_tui.service.wire import Add, Control, JobInfo, Resume, Set, Stop
from tests.service.conftest import Env, engine_pid, wait_for

KIB = 1024


def test_a_dashboard_attaching_after_pause_all_leaves_a_running_upload_alone(
    engine_env: Env, tmp_path: Path
) -> None:
    f = tmp_path / "a.bin"
    f.write_bytes(os.urandom(384 * KIB))
    settings = Settings(
        host=engine_env.server.url,
        credentials=Credentials(access_token=engine_env.server.token),
        state_dir=engine_env.state,
    )

    async def scenario() -> dict[str, Any]:
        first = await connect(settings, "dashboard")
        upload = await connect(settings, "upload")
        done: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

        def on_event(obj: dict[str, Any]) -> None:
            if obj.get("event") == "batch_done" and not done.done():
                done.set_result(obj)

        upload.on_event = on_event
        try:
            await first.request(Control("pause"))  # "pause all", then quit: remembered
            await first.close()
            await upload.request(Set(bwlimit=128 * KIB, persist=False))
            await upload.request(Add(paths=[str(f)], chunk_size=64 * KIB))
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 20
            while True:  # the file is on its way
                job = (await upload.request(JobInfo(job=1)))["job"]
                if job is not None and job["state"] == "uploading":
                    break
                assert loop.time() < deadline, job
                await asyncio.sleep(0.05)
            later = await connect(settings, "dashboard")
            try:
                await later.request(Resume(follow=False, keep_paused=True))
                await upload.request(Set(bwlimit=0, persist=False))
                return await asyncio.wait_for(done, 30)
            finally:
                await later.request(Stop())
                await later.close()
        finally:
            await upload.close()

    finished = asyncio.run(scenario())
    wait_for(lambda: engine_pid(engine_env.state) is None, what="the engine to exit")
    assert finished["left"] == 0, finished
