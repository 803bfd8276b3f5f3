"""A scan's share of the engine's loop while uploads run with work queued ahead of them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from synapse_tui.engine.scheduler import UploadManager

# The share of the loop's time a scan's intake (journal lookups and inserts, one event
# per file) may take while uploads run and enough is queued ahead of them. Measured
# (docs/scale.md): an intake flat out cut 2,000 x 20 KiB uploading meanwhile from 556 to
# 139 files/s; the hashing itself (threads) cost them 3%.
SCAN_SHARE = 0.2
# A pause never exceeds this: a scan cancelled or the uploads ended is seen soon enough.
MAX_PAUSE = 0.5


class ScanPacer:
    """After each batch a scan queued, a pause in proportion to the loop time the batch
    took, so that the scan takes at most `share` of the loop while uploads run and at
    least a look-ahead of queued jobs waits for them (queueing faster would not upload
    anything sooner). With nothing uploading, or the queue short, the scan goes flat out:
    it is what feeds the uploads. A scan that feeds nothing (`feeds=False`: the `scan`
    command, which only reports) yields whenever uploads run, however long the queue."""

    def __init__(
        self,
        m: UploadManager,
        share: float = SCAN_SHARE,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        *,
        feeds: bool = True,
    ) -> None:
        self.m = m
        self.share = share
        self.feeds = feeds
        self.sleep = sleep
        self.pauses = 0  # batches after which the scan paused (what the tests count)

    def clock(self) -> float:
        return time.perf_counter()

    def should_yield(self) -> bool:
        m = self.m
        if not m.runner.running:  # cheap first: nothing has a task
            return False
        if not m.active():
            return False
        return not self.feeds or m.queue.queued_here() >= m.queue.limit

    def pause_for(self, busy: float) -> float:
        """The pause after a batch that held the loop `busy` seconds (0: none)."""
        if busy <= 0 or not self.should_yield():
            return 0.0
        return min(MAX_PAUSE, busy * (1 - self.share) / self.share)

    async def after(self, busy: float) -> None:
        pause = self.pause_for(busy)
        if pause > 0:
            self.pauses += 1
            await self.sleep(pause)
