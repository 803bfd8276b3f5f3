"""A unit looked for after a crash or a lost answer is never one this journal already
recorded for another group. Two groups of equal files and stem in two folders make units
the server cannot tell apart (a unit's files carry their checksum and base name only):
the journal can."""

from __future__ import annotations

import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from synapse_tui.engine import collections
from synapse_tui.engine.errors import OutcomeUnknown
from synapse_tui.engine.journal import Journal
from synapse_tui.engine.protocol import ProtocolClient
from tests.engine.test_collections import plan_for, run, server, units_on
from tests.engine.test_lost_units import lose

__all__ = ["server"]  # the fixture, imported for these tests


def two_folders(data: Path) -> None:
    """a/ and b/, each the same picture and label under the same stem."""
    for folder in ("a", "b"):
        (data / folder).mkdir(parents=True)
        (data / folder / "img.jpg").write_bytes(b"the same picture" * 100)
        (data / folder / "img.json").write_bytes(b'{"label": "cat"}')


def lose_folder(state: Path, folder: bytes) -> None:
    """As a crash after the units' request of `folder`'s group was sent would leave it."""
    lose(state, None, where=lambda path: b"/" + folder + b"/" in path)


def recorded(state: Path) -> dict[str, Any]:
    """Each folder's unit id, as the journal recorded it for both of its files."""
    by_folder: dict[str, set[Any]] = {}
    for job in Journal(state).jobs():
        by_folder.setdefault(Path(job.path.decode()).parent.name, set()).add(job.steps.unit_id)
    assert all(len(ids) == 1 for ids in by_folder.values()), by_folder
    return {folder: ids.pop() for folder, ids in by_folder.items()}


async def two_folders_uploaded(url: str, tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    """`two_folders` uploaded into the collection, a unit per folder: the journal's folder
    and each folder's unit id."""
    data = tmp_path / "data"
    two_folders(data)
    plan = await plan_for(url, group_by_stem=True, spec_map={"jpg": "image", "json": "meta"})
    state = tmp_path / "st"
    await run(url, state, [data], plan)
    return state, recorded(state)


async def test_a_group_lost_to_a_crash_does_not_take_the_unit_of_its_equal(
    server: tuple[str, Path], tmp_path: Path
) -> None:
    url, root = server
    state, first = await two_folders_uploaded(url, tmp_path)
    assert len(units_on(url)) == 2 and first["a"] != first["b"]
    # b's request was sent when the process died, and never reached the server.
    lose_folder(state, b"b")
    db = sqlite3.connect(next(root.glob("*.sqlite3")))
    db.execute("DELETE FROM data_units WHERE id = ?", (first["b"],))
    db.commit()
    db.close()
    await run(url, state, [], None)
    units = units_on(url)
    assert len(units) == 2, units  # b's unit made again: it was not a's
    now = recorded(state)
    assert now["a"] == first["a"] and now["b"] != now["a"]
    assert Counter(now.values()) == Counter(u["id"] for u in units)


async def test_a_lost_answer_does_not_take_the_unit_recorded_earlier_in_the_step(
    server: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One group per request: a's answer comes, b's is lost after the server made it."""
    url, _ = server
    monkeypatch.setattr(collections, "UNITS_PER_REQUEST", 1)
    data = tmp_path / "data"
    two_folders(data)
    plan = await plan_for(url, group_by_stem=True, spec_map={"jpg": "image", "json": "meta"})
    real = ProtocolClient.post_json
    posts: list[str] = []

    async def second_answer_lost(self: ProtocolClient, path: str, body: Any, **kw: Any) -> Any:
        got = await real(self, path, body, **kw)
        if path == "data_units/":
            posts.append(path)
            if len(posts) == 2:
                raise OutcomeUnknown("connection lost before the answer")
        return got

    monkeypatch.setattr(ProtocolClient, "post_json", second_answer_lost)
    state = tmp_path / "st"
    await run(url, state, [data], plan)
    units = units_on(url)
    assert len(units) == 2 and len(posts) == 2  # found, not sent again
    ids = recorded(state)
    assert ids["a"] != ids["b"], "b took a's unit; its own is recorded by no one"
    assert Counter(ids.values()) == Counter(u["id"] for u in units)
