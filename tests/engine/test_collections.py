"""Registering uploads in a data collection, against the embedded backend.

Crash points between steps are reproduced by putting the journal back in the state a
killed process leaves (the step's request sent, its answer not recorded), then resuming.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from synapse_tui.engine.collections import (
    Collection,
    CollectionPlan,
    fetch_collection,
    parse_meta,
    parse_spec_map,
)
from synapse_tui.engine.errors import ConfigError
from synapse_tui.engine.events import Event, JobFailed, JobState, UnitRegistered
from synapse_tui.engine.journal import Journal
from synapse_tui.engine.protocol import Credentials, ProtocolClient
from synapse_tui.engine.scheduler import EngineOptions, UploadManager
from synapse_tui.server import BackgroundServer, ServerConfig

TOKEN = "collection-test-token"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "srv"
    config = ServerConfig(root=root, tokens=[TOKEN], collections=[("images", ["image", "meta"])])
    with BackgroundServer(config) as srv:
        yield srv.url, root


def make_manager(url: str, state: Path, events: list[Event]) -> UploadManager:
    client = ProtocolClient(url, Credentials(access_token=TOKEN))
    options = EngineOptions(host=url, chunk_size=64 * 1024, tick=0.05, backoff_base=0.01)
    return UploadManager(client, Journal(state), options, [events.append])


def dataset(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    for i in (1, 2, 3):
        (data / f"img_{i:03}.jpg").write_bytes(os.urandom(100_000 + i))
        (data / f"img_{i:03}.json").write_text(json.dumps({"i": i}))
    return data


async def plan_for(url: str, **kwargs: Any) -> CollectionPlan:
    client = ProtocolClient(url, Credentials(access_token=TOKEN))
    collection = await fetch_collection(client, 1)
    await client.aclose()
    plan = CollectionPlan(collection, **kwargs)
    plan.validate()
    return plan


async def run(url: str, state: Path, paths: list[Path], plan: CollectionPlan | None) -> list[Event]:
    events: list[Event] = []
    async with make_manager(url, state, events) as m:
        if paths:
            await m.add_paths([str(p) for p in paths], plan=plan)
        else:
            m.resume_unfinished()
        await m.wait_idle()
    return events


def units_on(url: str) -> list[dict[str, Any]]:
    answer = httpx.get(
        f"{url}/data_units/",
        params={"data_collection": "1"},
        headers={"Synapse-Access-Token": f"Token {TOKEN}"},
    )
    data = answer.json()
    return data["results"] if isinstance(data, dict) else data


def data_file_count(root: Path) -> int:
    db = sqlite3.connect(next(root.glob("*.sqlite3")))
    try:
        return int(db.execute("SELECT count(*) FROM data_files").fetchone()[0])
    finally:
        db.close()


def rewind(state: Path, change: Any) -> None:
    """Edit every job's journal row as a crash at some step would have left it."""
    db = sqlite3.connect(state / "journal.sqlite3")
    for job_id, extra in db.execute("SELECT id, extra FROM jobs").fetchall():
        new_state, new_extra = change(json.loads(extra))
        db.execute(
            "UPDATE jobs SET state = ?, extra = ? WHERE id = ?",
            (new_state, json.dumps(new_extra), job_id),
        )
    db.commit()
    db.close()


async def test_files_grouped_by_stem_become_one_unit_each(
    server: tuple[str, Path], tmp_path: Path
) -> None:
    url, root = server
    data = dataset(tmp_path)
    plan = await plan_for(
        url, group_by_stem=True, spec_map={"jpg": "image", "json": "meta"}, meta={"batch": "7"}
    )
    events = await run(url, tmp_path / "st", [data], plan)
    created = [e for e in events if isinstance(e, UnitRegistered)]
    assert len(created) == 3
    units = units_on(url)
    assert len(units) == 3 and data_file_count(root) == 6
    unit = next(u for u in units if u["meta"]["origin_file_stem"] == "img_002")
    assert set(unit["files"]) == {"image", "meta"}
    assert unit["files"]["image"]["path"] == "img_002.jpg"
    assert unit["meta"]["batch"] == "7"
    jobs = Journal(tmp_path / "st").jobs()
    assert {j.state for j in jobs} == {JobState.DONE}
    assert all(j.steps.unit_id and j.steps.data_file_id for j in jobs)


async def test_a_file_without_a_spec_fails_before_it_is_uploaded(
    server: tuple[str, Path], tmp_path: Path
) -> None:
    url, root = server
    data = dataset(tmp_path)
    plan = await plan_for(url, group_by_stem=True, spec_map={"jpg": "image"})
    events = await run(url, tmp_path / "st", [data], plan)
    failed = [e for e in events if isinstance(e, JobFailed)]
    assert len(failed) == 3 and all(".json" in e.path for e in failed)
    assert all("no spec for extension .json" in e.error for e in failed)
    assert len(units_on(url)) == 3 and data_file_count(root) == 3  # only the images


async def test_unknown_spec_names_are_refused_up_front(server: tuple[str, Path]) -> None:
    url, _ = server
    with pytest.raises(ConfigError, match="no spec 'nope'"):
        await plan_for(url, spec="nope")
    with pytest.raises(ConfigError, match="give --spec"):
        await plan_for(url)
    with pytest.raises(ValueError):
        parse_spec_map("jpg")
    assert parse_spec_map(".JPG=image, json=meta") == {"jpg": "image", "json": "meta"}
    assert parse_meta(["a=1", "b=x=y"]) == {"a": "1", "b": "x=y"}


def post_data_files(url: str, state: Path) -> None:
    """What a process killed right after sending POST data_files/ had already done."""
    for job in Journal(state).jobs():
        answer = httpx.post(
            f"{url}/data_files/",
            json={"chunked_upload": job.upload_id},
            headers={"Synapse-Access-Token": f"Token {TOKEN}"},
        )
        assert answer.status_code in (200, 201)


@pytest.mark.parametrize("crash", ["before-data-file", "data-file-sent"])
async def test_a_crash_before_the_data_file_is_recorded_never_duplicates(
    server: tuple[str, Path], tmp_path: Path, crash: str
) -> None:
    url, root = server
    data = dataset(tmp_path)
    plan = await plan_for(url, group_by_stem=True, spec_map={"jpg": "image", "json": "meta"})
    state = tmp_path / "st"
    await run(url, state, [data], None)  # the uploads completed, then the process died
    if crash == "data-file-sent":
        post_data_files(url, state)
    sent = crash == "data-file-sent"
    db = sqlite3.connect(state / "journal.sqlite3")
    for job_id, path in db.execute("SELECT id, path FROM jobs").fetchall():
        extra = {**plan.job_steps(bytes(path)).to_json(), "uploaded": True}
        if sent:
            extra["data_file_requested"] = True
        db.execute(
            "UPDATE jobs SET state = 'registering', extra = ? WHERE id = ?",
            (json.dumps(extra), job_id),
        )
    db.commit()
    db.close()
    assert data_file_count(root) == (6 if sent else 0) and units_on(url) == []
    events = await run(url, state, [], None)
    assert not [e for e in events if isinstance(e, JobFailed)]
    assert data_file_count(root) == 6, "a data file was created twice"
    assert len(units_on(url)) == 3
    assert {j.state for j in Journal(state).jobs()} == {JobState.DONE}


async def test_a_crash_after_the_unit_was_sent_never_duplicates(
    server: tuple[str, Path], tmp_path: Path
) -> None:
    url, root = server
    data = dataset(tmp_path)
    plan = await plan_for(url, group_by_stem=True, spec_map={"jpg": "image", "json": "meta"})
    state = tmp_path / "st"
    await run(url, state, [data], plan)
    before_units = units_on(url)
    assert len(before_units) == 3 and data_file_count(root) == 6
    # The process died after POST data_units/ was sent, before its answer was recorded.
    rewind(
        state,
        lambda x: (
            "registering",
            {**{k: v for k, v in x.items() if k != "unit_id"}, "unit_requested": True},
        ),
    )
    events = await run(url, state, [], None)
    assert len(units_on(url)) == 3, "a data unit was created twice"
    assert data_file_count(root) == 6
    assert not [e for e in events if isinstance(e, JobFailed)]
    jobs = Journal(state).jobs()
    assert {j.state for j in jobs} == {JobState.DONE}
    assert {j.steps.unit_id for j in jobs} == {u["id"] for u in before_units}


async def test_a_rerun_skips_what_is_registered_and_registers_what_is_only_uploaded(
    server: tuple[str, Path], tmp_path: Path
) -> None:
    url, _ = server
    data = dataset(tmp_path)
    state = tmp_path / "st"
    await run(url, state, [data / "img_001.jpg"], None)  # uploaded, not registered
    plan = await plan_for(url, spec="image")
    events = await run(url, state, [data / "img_001.jpg"], plan)
    assert len([e for e in events if isinstance(e, UnitRegistered)]) == 1
    again = await run(url, state, [data / "img_001.jpg"], plan)
    assert not [e for e in again if isinstance(e, UnitRegistered)]
    assert len(units_on(url)) == 1


def test_plan_maps_specs_and_meta() -> None:
    plan = CollectionPlan(
        Collection(5, "c", ("image", "meta")),
        group_by_stem=True,
        spec_map={"jpg": "image", "json": "meta"},
        meta={"k": "v"},
    )
    steps = plan.job_steps(b"/d/img_001.JPG").plan
    assert steps is not None and steps.spec == "image" and steps.collection == 5
    assert steps.unit_key == "/d/img_001"
    assert steps.meta == {
        "origin_file_stem": "img_001",
        "origin_file_extension": "JPG",
        "k": "v",
    }
