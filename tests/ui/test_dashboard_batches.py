"""Small files by the hundred a second: batches and log lines that do not grow with them."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from synapse_tui.engine.events import JobDone, JobState, JobStateChanged
from synapse_tui.ui.coalesce import Coalescer
from synapse_tui.ui.messages import EngineUpdate
from tests.ui.conftest import Backend, settings_for
from tests.ui.test_bridge import Sink


async def test_state_changes_all_the_time_make_a_batch_per_half_interval() -> None:
    sink = Sink()
    coalescer = Coalescer(sink, interval=0.2, urgent=0.01)
    coalescer.start(asyncio.get_running_loop())
    started = time.monotonic()
    n = 0
    while time.monotonic() - started < 1.0:  # a state change every 2 ms for a second
        coalescer.take(JobStateChanged(n, JobState.DONE))
        n += 1
        await asyncio.sleep(0.002)
    coalescer.stop()
    coalescer.flush()
    elapsed = time.monotonic() - started
    batches = [m for m in sink.messages if isinstance(m, EngineUpdate)]
    assert sum(len(b.events) for b in batches) == n  # nothing lost
    assert len(batches) <= elapsed / 0.1 + 2  # not one per 10 ms urgent delay


async def test_many_files_done_in_one_batch_make_one_log_line(
    app_factory: Any, backend: Backend
) -> None:
    app = app_factory(start_engine=False, settings=settings_for(backend))
    async with app.run_test(size=(120, 40)) as pilot:
        log = app.dashboard.log_widget
        before = len(log.lines_written)
        few = [JobDone(n, f"/data/f{n}.bin", 64, "m" * 32, "u", 0) for n in range(3)]
        app.dashboard.apply(EngineUpdate(list(few), {}))
        assert len(log.lines_written) == before + 3  # a few: a line each, as before
        many = [JobDone(n, f"/data/g{n}.bin", 64, "m" * 32, "u", 0) for n in range(300)]
        app.dashboard.apply(EngineUpdate(list(many), {}))
        await pilot.pause()
        assert len(log.lines_written) == before + 4
        assert "done 300 files: /data/g0.bin … /data/g299.bin" in log.lines_written[-1]
