"""A folder of more names than `scan.RUN` is listed in sorted runs spilled to a temporary
file and merged: the walk's order is the same as a folder sorted in memory, and its memory
is one run, not every name the folder holds (a million images in one folder)."""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path

import pytest

from synapse_tui.engine import scan
from synapse_tui.engine.scan import Refused, walk


def _paths(root: Path) -> list[bytes]:
    out = []
    for item in walk([os.fsencode(root)]):
        assert not isinstance(item, Refused), item
        out.append(item[0])
    return out


def _fill(folder: Path, count: int, stem: str = "image_") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):  # not created in name order: the listing's order is the disk's
        (folder / f"{stem}{(i * 7919) % count:07d}.jpg").write_bytes(b"x")


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_spilled_runs_walk_in_the_same_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "data"
    _fill(root, 53)
    for sub in ("a", "m", "zz"):
        _fill(root / sub, 11, stem=f"{sub}_")
    _fill(root / "m" / "deeper", 9)
    os.symlink(root / "image_0000003.jpg", root / "link_to_file")
    os.symlink(root / "a", root / "link_to_folder")
    in_memory = _paths(root)
    assert in_memory == sorted(in_memory)  # byte order, a folder's files before the next
    assert len(in_memory) == 53 + 3 * 11 + 9 + 1 + 11

    monkeypatch.setattr(scan, "RUN", 5)
    listing = scan._listing(os.fsencode(root))
    with listing:
        assert listing._spill is not None  # this folder was spilled: the path under test
        assert len(listing._runs) == 1 + -(-(53 + 5) // 5)
    fds = _fds()
    assert _paths(root) == in_memory
    assert _fds() == fds  # every spill file closed
    monkeypatch.setattr(scan, "MIN_BLOCK", 16)  # reads shorter than a name's record
    monkeypatch.setattr(scan, "MERGE_BUFFERS", 0)
    assert _paths(root) == in_memory


def test_a_walk_stopped_midway_closes_its_spill_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fill(tmp_path / "flat", 40)
    monkeypatch.setattr(scan, "RUN", 8)
    fds = _fds()
    walking = walk([os.fsencode(tmp_path / "flat")])
    first = [next(walking) for _ in range(10)]
    assert _fds() == fds + 1  # the listing's one temporary file, whatever its runs
    walking.close()
    assert _fds() == fds
    names = [item[0] for item in first if not isinstance(item, Refused)]
    assert len(names) == 10 and names == sorted(names)


def _peak_walking(folder: Path) -> int:
    tracemalloc.start()
    try:
        count = sum(1 for _ in walk([os.fsencode(folder)]))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert count == len(os.listdir(folder))
    return peak


def test_the_walks_memory_does_not_grow_with_a_flat_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scan, "RUN", 1_000)
    monkeypatch.setattr(scan, "MIN_BLOCK", 512)  # a run's read buffer below its length
    monkeypatch.setattr(scan, "MERGE_BUFFERS", 4_096)
    _fill(tmp_path / "small", 4_000)
    _fill(tmp_path / "large", 16_000)
    small = _peak_walking(tmp_path / "small")
    large = _peak_walking(tmp_path / "large")
    # Sorted in memory, 4x the names took ~4x the memory; in runs, one run while listed and
    # a small buffer per run while merged.
    assert large < 1.5 * small, (small, large)
