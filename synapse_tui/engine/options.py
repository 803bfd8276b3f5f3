"""How the engine behaves (EngineOptions): what the front ends set, what every part reads."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class EngineOptions:
    """How the engine behaves; the CLI and the dashboard fill it from Settings."""

    host: str
    chunk_size: int = 50 * 1024 * 1024
    concurrency: int = 4
    bwlimit: float | None = None
    retries: int = 12
    backoff_base: float = 1.0
    backoff_cap: float = 60.0
    stall_timeout: float = 120.0  # no body progress for this long: the request is abandoned
    response_timeout: float = 300.0  # body sent, no complete answer within this long
    settle_delay: float = 1.0  # after an unknown outcome, wait before re-reading the offset
    tick: float = 0.5  # progress events per job at most every `tick` seconds
    # A paused file finishes its in-flight chunk when that takes at most this long, so a
    # deliberate pause throws nothing away; a longer one is cut (resumed from the
    # server's offset, as after a cut connection).
    pause_grace: float = 5.0
    expiry: float | None = 86400.0  # server-side expiry, to warn when an ETA passes it
    strategy: str = "auto"  # auto | presigned | chunked (engine/presigned.py)
    # Small files (one request each) in flight per slot of `concurrency`: they are bound by
    # round trips, not bandwidth, so more of them at once is faster; a large file takes a
    # whole slot. The front ends use SMALL_BOOST; 1: every file takes a slot.
    small_boost: int = 1
