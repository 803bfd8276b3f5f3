"""A lost answer to the data units' POST: the units may exist, so they are looked for, never
created a second time by a blind resend."""

from __future__ import annotations

import os
from pathlib import Path

import httpx

from synapse_tui.engine.collections import CollectionPlan, fetch_collection
from synapse_tui.engine.events import Event, JobFailed
from synapse_tui.engine.protocol import Credentials, ProtocolClient
from tests.faults.helpers import TimedProxy, make_file, make_manager
from tests.harness.embedded import EmbeddedServer
from tests.harness.proxy import Fault, Rule


async def test_a_lost_units_answer_creates_each_unit_once(
    embedded_server: EmbeddedServer, tmp_path: Path
) -> None:
    srv = embedded_server
    data = tmp_path / "data"
    data.mkdir()
    for i in range(3):
        make_file(data / f"img{i}.jpg", 2000 + i, seed=i)
    async with TimedProxy("127.0.0.1", srv.port) as proxy:
        api = proxy.url + "/api"
        client = ProtocolClient(api, Credentials(access_token=srv.token))
        try:
            plan = CollectionPlan(await fetch_collection(client, 1), spec="image")
        finally:
            await client.aclose()
        proxy.add_rule(
            Rule(Fault("drop_response"), method="POST", path_contains="data_units", times=1)
        )
        events: list[Event] = []
        async with make_manager(api, srv.token, tmp_path / "st", events) as m:
            await m.add_paths([os.fsencode(data)], plan=plan)
            await m.wait_idle()
        m.journal.close()
    assert not [e for e in events if isinstance(e, JobFailed)], events
    units = httpx.get(srv.url + "/data_units/", params={"data_collection": "1"},
                      headers=srv.headers()).json()["results"]  # fmt: skip
    stems = sorted(u["meta"]["origin_file_stem"] for u in units)
    assert stems == ["img0", "img1", "img2"], stems  # one unit each, not two
