"""Collection uploads where two files have the same content, and lost units on many pages."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from synapse_tui.engine import collections
from synapse_tui.engine.events import JobFailed, JobSkipped, JobState, UnitRegistered
from synapse_tui.engine.journal import Journal
from tests.engine.test_collections import (
    data_file_count,
    dataset,
    plan_for,
    rewind,
    run,
    server,
    units_on,
)

__all__ = ["server"]  # the fixture, imported for these tests


def upload_count(root: Path) -> int:
    db = sqlite3.connect(next(root.glob("*.sqlite3")))
    try:
        return int(db.execute("SELECT count(*) FROM uploads").fetchone()[0])
    finally:
        db.close()


async def test_a_twin_is_registered_from_the_upload_holding_its_bytes(
    server: tuple[str, Path], tmp_path: Path
) -> None:
    url, root = server
    data = dataset(tmp_path)
    # img_002.jpg has img_001.jpg's bytes: both units must still get their image.
    (data / "img_002.jpg").write_bytes((data / "img_001.jpg").read_bytes())
    plan = await plan_for(url, group_by_stem=True, spec_map={"jpg": "image", "json": "meta"})
    events = await run(url, tmp_path / "st", [data], plan)
    assert not [e for e in events if isinstance(e, JobFailed | JobSkipped)]
    assert len([e for e in events if isinstance(e, UnitRegistered)]) == 3
    units = {u["meta"]["origin_file_stem"]: u for u in units_on(url)}
    assert sorted(units) == ["img_001", "img_002", "img_003"]
    for unit in units.values():
        assert set(unit["files"]) == {"image", "meta"}, unit
    first, second = units["img_001"]["files"]["image"], units["img_002"]["files"]["image"]
    assert second["checksum"] == first["checksum"] and second["path"] == "img_002.jpg"
    assert upload_count(root) == 5 and data_file_count(root) == 5  # the bytes went up once
    jobs = Journal(tmp_path / "st").jobs()
    assert {j.state for j in jobs} == {JobState.DONE} and len(jobs) == 6


async def test_a_twin_uploads_its_own_bytes_when_its_original_fails(
    server: tuple[str, Path], tmp_path: Path
) -> None:
    url, root = server
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.jpg").write_bytes(b"same bytes" * 1000)
    (data / "b.jpg").write_bytes(b"same bytes" * 1000)
    plan = await plan_for(url, spec="image")
    state = tmp_path / "st"
    events = await run(url, state, [data], plan)
    assert len(units_on(url)) == 2
    # Rewind: the original (a.jpg) failed, the twin never got its data file.
    db = sqlite3.connect(state / "journal.sqlite3")
    rows = db.execute("SELECT id, path, extra FROM jobs ORDER BY id").fetchall()
    (a_id, _, _), (b_id, _, b_extra) = rows
    db.execute("UPDATE jobs SET state = 'failed' WHERE id = ?", (a_id,))
    twin = json.loads(b_extra)
    assert twin["twin"] is True
    twin = {k: v for k, v in twin.items() if k not in ("unit_id", "data_file_id", "checksum",
                                                        "uploaded")}  # fmt: skip
    db.execute("UPDATE jobs SET state = 'queued', extra = ?, upload_id = NULL WHERE id = ?",
               (json.dumps(twin), b_id))  # fmt: skip
    db.execute("DELETE FROM ledger")
    db.commit()
    db.close()
    uploads = upload_count(root)
    events = await run(url, state, [], None)
    assert not [e for e in events if isinstance(e, JobFailed)]
    assert upload_count(root) == uploads + 1  # the twin sent its own bytes
    assert len(units_on(url)) == 3
    assert Journal(state).get(b_id).state == JobState.DONE


async def test_lost_units_are_found_on_any_page(
    server: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _ = server
    monkeypatch.setattr(collections, "LIST_PAGE_SIZE", 1)
    data = dataset(tmp_path)
    plan = await plan_for(url, group_by_stem=True, spec_map={"jpg": "image", "json": "meta"})
    state = tmp_path / "st"
    await run(url, state, [data], plan)
    before = units_on(url)
    rewind(
        state,
        lambda x: (
            "registering",
            {**{k: v for k, v in x.items() if k != "unit_id"}, "unit_requested": True},
        ),
    )
    await run(url, state, [], None)
    assert len(units_on(url)) == 3, "a data unit on a later page was created again"
    assert {j.steps.unit_id for j in Journal(state).jobs()} == {u["id"] for u in before}
