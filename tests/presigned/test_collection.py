"""Presigned uploads into a data collection: the data file the confirm made is the one the
unit names, in the same run and in a later `--collection` run of an uploaded file."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import httpx

from synapse_tui.engine.collections import CollectionPlan, fetch_collection
from synapse_tui.engine.events import Event, JobFailed, UnitRegistered
from synapse_tui.engine.protocol import Credentials, ProtocolClient
from tests.faults.helpers import make_file, make_manager
from tests.harness.embedded import EmbeddedServer


async def plan_for(server: EmbeddedServer) -> CollectionPlan:
    client = ProtocolClient(server.url, Credentials(access_token=server.token))
    try:
        collection = await fetch_collection(client, 1)
    finally:
        await client.aclose()
    plan = CollectionPlan(collection, spec="image")
    plan.validate()
    return plan


async def upload(
    server: EmbeddedServer, state: Path, paths: list[Path], plan: CollectionPlan | None
) -> list[Event]:
    events: list[Event] = []
    async with make_manager(server.url, server.token, state, events) as m:
        await m.add_paths([os.fsencode(p) for p in paths], plan=plan)
        await m.wait_idle()
    m.journal.close()
    return events


def units(server: EmbeddedServer) -> list[dict[str, Any]]:
    answer = httpx.get(
        f"{server.url}/data_units/",
        params={"data_collection": "1"},
        headers={"Synapse-Access-Token": f"Token {server.token}"},
    )
    return list(answer.json()["results"])


def presigned_data_files(server: EmbeddedServer) -> int:
    rows = server.backend.store._conn().execute(
        "SELECT count(*) FROM presigned_files WHERE data_file IS NOT NULL"
    )
    return int(rows.fetchone()[0])


async def test_a_presigned_file_is_registered_in_its_collection(
    s3_server: EmbeddedServer, tmp_path: Path
) -> None:
    one = make_file(tmp_path / "one.jpg", 5000, seed=1)
    events = await upload(s3_server, tmp_path / "st", [one], await plan_for(s3_server))
    assert not [e for e in events if isinstance(e, JobFailed)]
    assert len([e for e in events if isinstance(e, UnitRegistered)]) == 1
    (unit,) = units(s3_server)
    assert unit["files"]["image"]["checksum"] == hashlib.sha1(one.read_bytes()).hexdigest()
    assert presigned_data_files(s3_server) == 1
    assert s3_server.backend.store.list_for(1) == []  # nothing went the chunked way
    # Its signed URL (fetched without a token, as the SDK does) leads to the stored bytes.
    fetched = httpx.get(unit["files"]["image"]["url"], follow_redirects=True)
    assert fetched.status_code == 200 and fetched.content == one.read_bytes()
    assert s3_server.token not in str(fetched.url)


async def test_a_file_uploaded_presigned_before_is_registered_by_a_collection_run(
    s3_server: EmbeddedServer, tmp_path: Path
) -> None:
    one = make_file(tmp_path / "one.jpg", 5000, seed=2)
    state = tmp_path / "st"
    events = await upload(s3_server, state, [one], None)
    assert not [e for e in events if isinstance(e, JobFailed)]
    events = await upload(s3_server, state, [one], await plan_for(s3_server))
    failed = [e for e in events if isinstance(e, JobFailed)]
    assert not failed, failed
    (unit,) = units(s3_server)
    assert unit["files"]["image"]["checksum"] == hashlib.sha1(one.read_bytes()).hexdigest()
    assert presigned_data_files(s3_server) == 1  # its bytes went up once


async def test_a_twin_resumed_after_its_presigned_original_takes_that_data_file(
    s3_server: EmbeddedServer, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.jpg").write_bytes(b"same bytes" * 1000)
    (data / "b.jpg").write_bytes(b"same bytes" * 1000)
    state = tmp_path / "st"
    events = await upload(s3_server, state, [data], await plan_for(s3_server))
    assert not [e for e in events if isinstance(e, JobFailed)]
    # Rewind the twin (b.jpg) to before it took its original's data file: a crash then.
    db = sqlite3.connect(state / "journal.sqlite3")
    (b_id, b_extra), *_ = db.execute(
        "SELECT id, extra FROM jobs WHERE extra LIKE '%\"twin\": true%'"
    ).fetchall()
    twin = {k: v for k, v in json.loads(b_extra).items()
            if k not in ("unit_id", "data_file_id", "checksum", "uploaded")}  # fmt: skip
    db.execute("UPDATE jobs SET state = 'queued', extra = ?, upload_id = NULL WHERE id = ?",
               (json.dumps(twin), b_id))  # fmt: skip
    db.commit()
    db.close()
    resumed: list[Event] = []
    async with make_manager(s3_server.url, s3_server.token, state, resumed) as m:
        m.resume_unfinished()
        await m.wait_idle()
    m.journal.close()
    failed = [e for e in resumed if isinstance(e, JobFailed)]
    assert not failed, failed
    assert len(units(s3_server)) == 3  # its unit again (the rewind dropped its unit id)
    assert presigned_data_files(s3_server) == 1
