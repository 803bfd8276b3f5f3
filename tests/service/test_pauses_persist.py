"""Every job a client paused stays paused across an engine restart and a `configure`, also
those beyond the engine's look-ahead (journal rows only); resume-all then runs them all."""

from __future__ import annotations

import asyncio
from pathlib import Path

from synapse_tui.config import Settings
from synapse_tui.engine.credentials import Credentials
from synapse_tui.engine.scheduler import LOOKAHEAD
from synapse_tui.service.client import EngineClient, connect
from synapse_tui.service.wire import Add, Configure, Control, ListJobs, Resume, Stop
from tests.service.conftest import Env, engine_pid, wait_for

FILES = LOOKAHEAD + 64  # more than the engine holds in memory


def tiny_files(folder: Path, count: int) -> Path:
    folder.mkdir(parents=True)
    for i in range(count):
        (folder / f"f{i:05d}.bin").write_bytes(f"{i:016d}".encode() * 4)  # distinct
    return folder


async def counts(client: EngineClient) -> dict[str, int]:
    """The engine's own counters (live, not the journal's committed rows)."""
    answer = await client.request(ListJobs(limit=0, scope="engine"))
    out: dict[str, int] = {}
    for state in ("queued", "paused", "done", "uploading"):
        reply = await client.request(ListJobs(limit=0, state=state, scope="engine"))
        out[state] = int(reply["total"])
    out["all"] = int(answer["total"])
    return out


async def until(client: EngineClient, state: str, n: int, timeout: float = 60) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (now := await counts(client))[state] != n:
        assert loop.time() < deadline, f"waiting for {n} {state}: {now}"
        await asyncio.sleep(0.1)


def test_paused_jobs_beyond_the_lookahead_stay_paused(engine_env: Env, tmp_path: Path) -> None:
    src = tiny_files(tmp_path / "src", FILES)
    settings = Settings(
        host=engine_env.server.url,
        credentials=Credentials(access_token=engine_env.server.token),
        state_dir=engine_env.state,
    )

    async def first_engine() -> None:
        client = await connect(settings, "dashboard")
        try:
            await client.request(Control("drain"))  # queued, none started
            await client.request(Add(paths=[str(src)], follow=False))
            await until(client, "queued", FILES)
            await client.request(Control("pause"))  # pause all: the user's pause
            await until(client, "paused", FILES)
            # Not drained any more: a job wrongly queued again would run from now on.
            await client.request(Control("undrain"))
            await client.request(Stop())
        finally:
            await client.close()

    async def second_engine() -> dict[str, int]:
        client = await connect(settings, "dashboard")
        try:
            await client.request(Resume(follow=False, keep_paused=True))  # a dashboard attaching
            after_restart = await counts(client)
            assert after_restart["paused"] == FILES, after_restart
            assert after_restart["queued"] == 0 and after_restart["all"] == FILES

            # `configure` rebuilds the manager and takes the journal's jobs back again.
            await client.request(Configure(engine_env.server.url, engine_env.server.token))
            after_configure = await counts(client)
            assert after_configure["paused"] == FILES, after_configure
            assert after_configure["queued"] == 0 and after_configure["all"] == FILES

            await client.request(Control("resume"))  # resume all: every row, not only memory
            await until(client, "done", FILES, timeout=120)
            final = await counts(client)
            await client.request(Stop())
            return final
        finally:
            await client.close()

    asyncio.run(first_engine())
    wait_for(lambda: engine_pid(engine_env.state) is None, what="the first engine to exit")
    final = asyncio.run(second_engine())
    wait_for(lambda: engine_pid(engine_env.state) is None, what="the second engine to exit")
    assert final["paused"] == 0 and final["queued"] == 0 and final["done"] == FILES
