"""The dashboard's engine client draws a lone state change at once, and a stream of them
(many small files ending) at most every `progress_interval`, not a frame per change."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from synapse_tui.config import Settings
from synapse_tui.engine.events import JobState, JobStateChanged
from synapse_tui.service.wire import event_to_wire
from synapse_tui.ui.service_bridge import ServiceBridge


class Target:
    def __init__(self) -> None:
        self.posted: list[float] = []

    def post_message(self, message: Any) -> bool:
        self.posted.append(time.monotonic())
        return True


def _change(job_id: int) -> dict[str, Any]:
    return event_to_wire(JobStateChanged(job_id, JobState.DONE, "done"))


async def test_a_stream_of_changes_is_drawn_at_the_progress_interval() -> None:
    target = Target()
    bridge = ServiceBridge(target, Settings(), progress_interval=1.0, urgent_delay=0.05)
    bridge.coalescer.start(asyncio.get_running_loop())
    started = time.monotonic()
    n = 0
    while time.monotonic() - started < 1.5:  # a change every 10 ms for 1.5 s
        n += 1
        bridge._on_wire(_change(n))
        await asyncio.sleep(0.01)
    # A frame per urgent delay would be ~30 here; at most one a second, plus the first.
    assert 1 <= len(target.posted) <= 3, len(target.posted)

    deadline = time.monotonic() + 5
    while bridge.coalescer._urgent is not None and time.monotonic() < deadline:
        await asyncio.sleep(0.01)  # the last of the stream drawn
    await asyncio.sleep(1.0)  # quiet for a progress interval
    before = len(target.posted)
    sent = time.monotonic()
    bridge._on_wire(_change(n + 1))
    while len(target.posted) == before and time.monotonic() < sent + 5:
        await asyncio.sleep(0.005)
    assert len(target.posted) == before + 1
    assert target.posted[-1] - sent < 0.5  # a lone change: within the urgent delay (+ load)
    bridge.coalescer.stop()
