"""Two processes opening a new journal at the same moment both get it (no "locked")."""

from __future__ import annotations

import multiprocessing
import tempfile
from pathlib import Path


def _open(folder: str, results: multiprocessing.Queue[str]) -> None:
    from synapse_tui.engine.journal import Journal

    try:
        Journal(Path(folder)).close()
    except Exception as exc:  # reported to the test, which fails on it
        results.put(f"{type(exc).__name__}: {exc}")
    else:
        results.put("ok")


def test_two_processes_open_a_new_journal_at_once(tmp_path: Path) -> None:
    # The switch to WAL of one met the other's lock ("database is locked", at once: SQLite
    # does not wait for it): an `upload` started together with another failed with exit 2
    # about one time in twenty.
    context = multiprocessing.get_context("fork")
    failures: list[str] = []
    for _ in range(40):
        folder = tempfile.mkdtemp(dir=tmp_path)
        results = context.Queue()
        procs = [context.Process(target=_open, args=(folder, results)) for _ in range(2)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        failures += [r for r in (results.get(timeout=10) for _ in procs) if r != "ok"]
    assert failures == []
