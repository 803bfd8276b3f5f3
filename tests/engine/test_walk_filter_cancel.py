"""A scan stopped while its walk passes files the --include/--exclude rules leave out stops
there: the walker does not go on through the rest of the tree first (the scan's close
waits for it: `scan | head`, ctrl+c or an engine stop on a million left-out files)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from pathlib import Path

from synapse_tui.engine.filters import PathFilter
from synapse_tui.engine.scan import scan

FILES = 200


class _Counting(PathFilter):
    """Leaves out every file; counts the files it is asked about; the fifth waits until
    the scan is stopped, so the stop meets the walk in the middle of the left-out files."""

    def __init__(self, cancel: threading.Event) -> None:
        super().__init__([(False, "*")])
        self.cancel = cancel
        self.asked = 0
        self.midway = threading.Event()

    def takes(self, relative: bytes) -> bool:
        self.asked += 1
        if self.asked == 5:
            self.midway.set()
            self.cancel.wait(10)
        return super().takes(relative)


async def test_a_scan_stopped_among_left_out_files_stops_its_walk(tmp_path: Path) -> None:
    for i in range(FILES):
        (tmp_path / f"f{i:04d}.tmp").write_bytes(b"x")
    cancel = threading.Event()
    rules = _Counting(cancel)

    async def consume() -> None:
        async for _ in scan([os.fsencode(tmp_path)], cancel=cancel, path_filter=rules):
            pass

    task = asyncio.create_task(consume())
    assert await asyncio.to_thread(rules.midway.wait, 10)
    task.cancel()  # its scan's close sets `cancel`, then waits for the walker
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(task, 10)
    assert cancel.is_set()
    assert rules.asked < 10, f"the walk went on through {rules.asked} of {FILES} files"
