"""A large folder whose sorted runs cannot be spilled (no room in TMPDIR, or none that is
writable) is still walked, sorted in memory as before: its files are not refused."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest

from synapse_tui.engine import scan
from synapse_tui.engine.scan import Refused, walk


def _fill(folder: Path, count: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (folder / f"img_{(i * 7919) % count:05d}.jpg").write_bytes(b"x")


def _walked(root: Path) -> list[bytes | Refused]:
    return [i if isinstance(i, Refused) else i[0] for i in walk([os.fsencode(root)])]


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.parametrize("where", ["create", "write"])
def test_a_folder_whose_runs_cannot_be_spilled_is_walked_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    _fill(tmp_path / "flat", 23)
    expected = _walked(tmp_path)
    assert len(expected) == 23 and expected == sorted(expected)  # type: ignore[type-var]
    monkeypatch.setattr(scan, "RUN", 5)
    if where == "create":

        def no_file(*args: Any, **kwargs: Any) -> Any:
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(tempfile, "TemporaryFile", no_file)
    else:
        writes = [0]
        real = scan._spill

        def full(spill: Any, names: list[tuple[bytes, bool]]) -> int:
            writes[0] += 1
            if writes[0] > 2:  # two runs written, then the disk is full
                raise OSError(errno.ENOSPC, "No space left on device")
            return real(spill, names)

        monkeypatch.setattr(scan, "_spill", full)
    fds = _fds()
    assert _walked(tmp_path) == expected
    assert _fds() == fds
