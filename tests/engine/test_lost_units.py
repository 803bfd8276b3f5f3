"""Units sent before a crash and looked for on resume: a page at a time, and one server
unit for one group only."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from synapse_tui.engine import collections
from synapse_tui.engine.journal import Journal
from tests.engine.test_collections import plan_for, run, server, units_on

__all__ = ["server"]  # the fixture, imported for these tests


def lose(state: Path, paths: set[str] | None, where: Callable[[bytes], bool] | None = None) -> None:
    """As a crash after the units' request was sent would leave the jobs of `paths` (the
    file names; None: every job), or those whose path `where` takes."""
    db = sqlite3.connect(state / "journal.sqlite3")
    for job_id, path, extra in db.execute("SELECT id, path, extra FROM jobs").fetchall():
        if paths is not None and Path(bytes(path).decode()).name not in paths:
            continue
        if where is not None and not where(bytes(path)):
            continue
        extra = {k: v for k, v in json.loads(extra).items() if k != "unit_id"}
        db.execute(
            "UPDATE jobs SET state = 'registering', extra = ? WHERE id = ?",
            (json.dumps({**extra, "unit_requested": True}), job_id),
        )
    db.commit()
    db.close()


async def test_the_unit_list_is_read_only_until_every_lost_unit_is_found(
    server: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _ = server
    monkeypatch.setattr(collections, "LIST_PAGE_SIZE", 1)
    data = tmp_path / "data"
    data.mkdir()
    for i in range(6):
        (data / f"f{i}.jpg").write_bytes(b"%d" % i * 100)
    state = tmp_path / "st"
    await run(url, state, [data], await plan_for(url, spec="image"))
    before = {u["id"] for u in units_on(url)}
    assert len(before) == 6
    lose(state, {"f0.jpg", "f1.jpg"})  # the oldest two: on pages 1 and 2
    pages: list[dict[str, Any]] = []
    real = collections.ProtocolClient.get_json

    async def counting(self: Any, path: str, params: Any = None) -> Any:
        if path == "data_units/":
            pages.append(dict(params or {}))
        return await real(self, path, params)

    monkeypatch.setattr(collections.ProtocolClient, "get_json", counting)
    await run(url, state, [], None)
    assert {u["id"] for u in units_on(url)} == before  # found, not created again
    assert len(pages) == 2, pages  # not the other four pages


async def test_twins_in_two_folders_each_keep_their_own_unit(
    server: tuple[str, Path], tmp_path: Path
) -> None:
    url, root = server
    data = tmp_path / "data"
    for folder in ("a", "b"):
        (data / folder).mkdir(parents=True)
        (data / folder / "img.jpg").write_bytes(b"the same picture" * 100)
    state = tmp_path / "st"
    await run(url, state, [data], await plan_for(url, spec="image"))
    assert len(units_on(url)) == 2
    lose(state, {"img.jpg"})
    # Only one of the two reached the server (a backend that created part of a batch).
    db = sqlite3.connect(next(root.glob("*.sqlite3")))
    db.execute("DELETE FROM data_units WHERE id = (SELECT max(id) FROM data_units)")
    db.commit()
    db.close()
    await run(url, state, [], None)
    units = units_on(url)
    assert len(units) == 2, units  # the missing one was created again
    recorded = [j.steps.unit_id for j in Journal(state).jobs()]
    assert Counter(recorded) == Counter(u["id"] for u in units)
