"""A large folder whose spilled runs cannot be read back (an I/O error during the merge)
refuses the rest of that folder with one line; the walk goes on with the other folders."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from synapse_tui.engine import scan
from synapse_tui.engine.scan import Refused, walk


def _fill(folder: Path, count: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (folder / f"img_{i:05d}.jpg").write_bytes(b"x")


def test_a_read_error_in_the_merge_refuses_the_rest_of_that_folder_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fill(tmp_path / "a_before", 3)
    _fill(tmp_path / "b_large", 40)
    _fill(tmp_path / "c_after", 4)
    monkeypatch.setattr(scan, "RUN", 10)  # b_large: four runs spilled and merged
    monkeypatch.setattr(scan, "MERGE_BUFFERS", 1)  # so MIN_BLOCK a run ...
    monkeypatch.setattr(scan, "MIN_BLOCK", 64)  # ... a few names a read, not a whole run
    real_pread = os.pread
    reads = [0]

    def failing(fd: int, n: int, offset: int) -> bytes:
        reads[0] += 1
        if reads[0] > 4:  # each run's first block read, then the disk fails
            raise OSError(errno.EIO, "Input/output error")
        return real_pread(fd, n, offset)

    monkeypatch.setattr(os, "pread", failing)
    items = list(walk([os.fsencode(tmp_path)]))
    files = [os.path.basename(i[0]).decode() for i in items if not isinstance(i, Refused)]
    refused = [i for i in items if isinstance(i, Refused)]
    assert reads[0] > 4  # the failure was met during the merge
    assert [r.path for r in refused] == [os.fsencode(tmp_path / "b_large")]
    assert refused[0].error
    assert refused[0].reason == "cannot read the rest of the folder's listing: Input/output error"
    assert files[:3] == [f"img_{i:05d}.jpg" for i in range(3)]  # a_before, whole
    assert files[-4:] == [f"img_{i:05d}.jpg" for i in range(4)]  # c_after, whole
    large = files[3:-4]
    assert 0 < len(large) < 40  # b_large: what was read before the error, in order
    assert large == [f"img_{i:05d}.jpg" for i in range(len(large))]
