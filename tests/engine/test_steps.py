"""A job's collection steps are typed (JobSteps), and journals of the untyped version load.

Until JobSteps, a job's collection workflow was a dict of string keys journaled as JSON in
the `extra` column. The rows below are written exactly as that version wrote them.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from synapse_tui.engine.events import JobDone, JobFailed, JobState
from synapse_tui.engine.hashing import Identity
from synapse_tui.engine.journal import Journal
from synapse_tui.engine.steps import JobSteps, UnitPlan
from synapse_tui.server import BackgroundServer, ServerConfig
from tests.engine import test_collections as tc

META = {"origin_file_stem": "img_001", "origin_file_extension": "jpg", "k": "v"}
PLANNED = {"collection": 3, "spec": "image", "unit_key": "/d/img_001", "meta": META}
# Each step's row as the untyped version journaled it.
UNTYPED_ROWS: list[dict[str, Any]] = [
    PLANNED,
    {**PLANNED, "twin": True},
    {**PLANNED, "uploaded": True},
    {**PLANNED, "uploaded": True, "data_file_requested": True},
    {**PLANNED, "uploaded": True, "data_file_id": 17, "checksum": "a" * 32},
    {**PLANNED, "uploaded": True, "data_file_id": 17, "checksum": "a" * 32, "unit_requested": True},
    {**PLANNED, "uploaded": True, "data_file_id": 17, "checksum": "a" * 32, "unit_id": 9},
    {**PLANNED, "uploaded": True, "data_file_id": "df-1", "checksum": "b", "unit_id": "u-1"},
    # a presigned upload without a collection: what its confirm answered
    {"data_file_id": 5, "checksum": "c" * 40, "file_key": "k/1"},
    {"data_file_id": None, "checksum": "c" * 40, "file_key": "k/1"},
]


@pytest.mark.parametrize("row", UNTYPED_ROWS)
def test_an_untyped_row_loads_and_is_written_back_with_the_same_keys(row: dict[str, Any]) -> None:
    steps = JobSteps.from_json(json.loads(json.dumps(row)))
    # Written back as it was (a None is no value: the untyped version read it as missing).
    assert steps.to_json() == {k: v for k, v in row.items() if v is not None}
    assert JobSteps.from_json(steps.to_json()) == steps


def test_an_untyped_row_reads_as_typed_steps() -> None:
    row = {**PLANNED, "uploaded": True, "data_file_id": 17, "checksum": "a" * 32, "unit_id": 9}
    steps = JobSteps.from_json(row)
    assert steps.plan == UnitPlan(3, "image", "/d/img_001", META)
    assert steps.uploaded and not steps.twin and not steps.unit_requested
    assert (steps.data_file_id, steps.checksum, steps.unit_id) == (17, "a" * 32, 9)
    assert steps.collection == 3 and steps.spec == "image"
    assert JobSteps.from_json(None) == JobSteps() and JobSteps().to_json() == {}


def test_keys_a_newer_version_wrote_are_kept() -> None:
    steps = JobSteps.from_json({**PLANNED, "uploaded": True, "later": {"x": 1}})
    steps.data_file_id, steps.checksum = 4, "d"
    assert steps.to_json()["later"] == {"x": 1}


def test_a_replan_keeps_the_uploads_part_and_takes_the_new_plan() -> None:
    old = JobSteps.from_json(
        {**PLANNED, "twin": True, "uploaded": True, "data_file_id": 17, "checksum": "a"}
    )
    old.unit_requested = True
    new = JobSteps(UnitPlan(4, "meta", "/d/x", {}))
    steps = old.replanned(new)
    assert steps.plan == new.plan and not steps.twin and not steps.unit_requested
    assert (steps.uploaded, steps.data_file_id, steps.checksum) == (True, 17, "a")


@pytest.mark.parametrize("row", UNTYPED_ROWS)
@pytest.mark.parametrize("twin", [False, True])
def test_two_batches_replanning_one_cancelled_job_leave_what_one_would(
    row: dict[str, Any], twin: bool
) -> None:
    """Two scans' batches may both meet a cancelled job before either revives it
    (`Intake._replan` runs in `accept`, the revival at the batch's end): the second replan
    must change nothing the first did not."""
    new = JobSteps(UnitPlan(4, "meta", "/d/x", {"origin_file_stem": "x"}), twin=twin)
    once = JobSteps.from_json(json.loads(json.dumps(row))).replanned(new)
    assert once.replanned(new) == once
    assert once.replanned(new).to_json() == once.to_json()


def test_the_journal_reads_an_untyped_row_through_its_lookups(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    rec = journal.add_job(b"/d/img_001.jpg", Identity(10, 1, 2, 3), "fp", "http://h", 5)
    row = {**PLANNED, "uploaded": True, "data_file_id": 17, "checksum": "a" * 32, "unit_id": 9}
    journal._db.execute("UPDATE jobs SET extra = ? WHERE id = ?", (json.dumps(row), rec.id))
    journal.update(rec.id, state=JobState.DONE)
    assert journal.get(rec.id).steps == JobSteps.from_json(row)
    assert journal.registered("http://h", "fp", 3) == 9
    assert journal.registered("http://h", "fp", 4) is None
    assert journal.data_file_of("http://h", "fp", 10) == (17, "a" * 32)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "srv"
    config = ServerConfig(root=root, tokens=[tc.TOKEN], collections=[("images", ["image", "meta"])])
    with BackgroundServer(config) as srv:
        yield srv.url, root


async def test_a_journal_the_untyped_version_left_mid_registration_is_finished(
    server: tuple[str, Path], tmp_path: Path
) -> None:
    url, root = server
    data = tc.dataset(tmp_path)
    state = tmp_path / "st"
    await tc.run(url, state, [data], None)  # uploaded; the process died before registering
    db = sqlite3.connect(state / "journal.sqlite3")
    for job_id, path in db.execute("SELECT id, path FROM jobs").fetchall():
        stem, ext = os.path.splitext(os.fsdecode(path))
        untyped = {  # what the untyped version journaled once the upload completed
            "collection": 1,
            "spec": {".jpg": "image", ".json": "meta"}[ext],
            "unit_key": stem,
            "meta": {"origin_file_stem": os.path.basename(stem), "origin_file_extension": ext[1:]},
            "uploaded": True,
        }
        db.execute(
            "UPDATE jobs SET state = 'registering', extra = ? WHERE id = ?",
            (json.dumps(untyped), job_id),
        )
    db.commit()
    db.close()
    events = await tc.run(url, state, [], None)
    assert not [e for e in events if isinstance(e, JobFailed)]
    assert not [e for e in events if isinstance(e, JobDone)], "uploaded again"
    assert len(tc.units_on(url)) == 3 and tc.data_file_count(root) == 6
    db = sqlite3.connect(state / "journal.sqlite3")
    rows = db.execute("SELECT state, extra FROM jobs").fetchall()
    db.close()
    assert {state for state, _ in rows} == {"done"}
    # Written with the untyped version's keys, so that version could read them too.
    keys = {"collection", "spec", "unit_key", "meta", "uploaded", "data_file_requested"}
    keys |= {"data_file_id", "checksum", "unit_id"}
    assert all(set(json.loads(extra)) == keys for _, extra in rows)
