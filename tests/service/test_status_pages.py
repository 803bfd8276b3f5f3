"""The engine's `status` pages (service/queries.py) give the rows, order and states the
in-process `status` gives, whatever the page size."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from synapse_tui.cli import main
from synapse_tui.engine.events import JobState
from synapse_tui.engine.hashing import Identity
from synapse_tui.engine.journal import Journal
from synapse_tui.service.queries import status_jobs
from synapse_tui.service.store import EngineStore
from synapse_tui.service.wire import StatusJobs

HOST = "http://backend"


def _fill(journal: Journal) -> None:
    states = [JobState.QUEUED, JobState.PAUSED, JobState.UPLOADING, JobState.FAILED, JobState.DONE]
    for n in range(40):
        job = journal.add_job(
            f"/data/f{n}".encode(), Identity(n + 1, n, n, 1), f"fp{n}", HOST, 1024, (n % 3) - 1
        )
        state = states[n % len(states)]
        if state == JobState.DONE:
            journal.complete(job, "m" * 32, f"u{n}", 0, {})
        else:
            journal.update(job.id, state=state.value, last_error="boom" if n % 4 == 0 else None)
    # A failure that a later upload of the same path made good: hidden without --all.
    failed = journal.add_job(b"/data/again", Identity(9, 9, 9, 1), "fpx", HOST, 1024)
    journal.update(failed.id, state=JobState.FAILED.value)
    later = journal.add_job(b"/data/again", Identity(9, 9, 9, 1), "fpx", HOST, 1024)
    journal.complete(later, "m" * 32, "u-again", 0, {})


def _paged(service: Any, every: bool, limit: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    page = StatusJobs(every=every, limit=limit)
    while True:
        answer = status_jobs(service, page)
        rows += answer["jobs"]
        if not answer["next"]:
            return rows
        page = StatusJobs(every, answer["next"][0], answer["next"][1], limit)


@pytest.mark.parametrize("every", [False, True])
def test_engine_pages_equal_the_in_process_status(
    every: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journal = Journal(tmp_path)
    _fill(journal)
    journal.close()
    store = EngineStore(tmp_path / Journal.FILENAME)
    service = cast(Any, SimpleNamespace(store=store, manager=None, state_dir=tmp_path))
    args = ["status", "--json", "--foreground", "--state-dir", str(tmp_path)]
    assert main([*args, "--all"] if every else args) == 0
    expected = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    expected = [{k: v for k, v in e.items() if k != "event"} for e in expected]
    assert len(expected) > 20
    assert any(e["state"] == "interrupted" for e in expected)
    assert (not every) == all(
        e["path"] != "/data/again" or e["state"] != "failed" for e in expected
    )
    for limit in (1, 3, 7, 500):
        assert _paged(service, every, limit) == expected, limit
    store.close()
