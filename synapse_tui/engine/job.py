"""A job as the engine drives it: its journal row plus what lives only in memory."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from synapse_tui.engine.events import JobState
from synapse_tui.engine.hashing import HashPair, Identity
from synapse_tui.engine.journal import JobRecord
from synapse_tui.engine.meter import Meter
from synapse_tui.engine.names import display_path, upload_filename
from synapse_tui.engine.steps import JobSteps

# Files up to this size (and up to one chunk) go in one request, read whole into memory.
WHOLE_FILE_LIMIT = 1 << 20


@dataclass(eq=False)
class Job:
    """A job as the engine drives it (the journal row plus what lives only in memory)."""

    id: int
    path: bytes
    size: int
    identity: Identity
    fingerprint: str
    chunk_size: int
    priority: int = 0
    state: JobState = JobState.QUEUED
    upload_id: str | None = None
    upload_url: str | None = None
    offset: int = 0  # acknowledged by the server
    sent: int = 0  # acknowledged + in flight
    attempts: int = 0
    last_error: str | None = None
    md5: str | None = None
    resumed_from: int = 0
    creating_since: float | None = None
    steps: JobSteps = field(default_factory=JobSteps)  # its collection workflow, if any
    # in memory only
    hashes: HashPair | None = None  # at `offset`
    chunk_hashes: HashPair | None = None  # at the end of the chunk being sent, once read whole
    meter: Meter = field(default_factory=Meter)
    pause_requested: bool = False
    pause_cut: bool = False  # the pause grace ran out mid-chunk: the request was cut
    cancel_requested: bool = False
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    restarts: int = 0
    high_water: int = 0  # the highest offset the server acknowledged for this upload
    failing_since: float | None = None  # first failure since the last progress (backoff clock)
    task: asyncio.Task[None] | None = None
    creating_noted: bool = False  # the journal holds a creating_since noted ahead for it
    slot: int = 1  # the weight it holds of the concurrency gate while it runs
    counted_sent: int = 0  # `sent` as the manager's counters hold it (engine/states.py)

    def reset_retries(self) -> None:
        """A fresh retry budget: after progress, a resume or a retry of a failed job."""
        self.attempts = 0
        self.failing_since = None

    @property
    def display(self) -> str:
        return display_path(self.path)

    @property
    def name(self) -> str:
        return upload_filename(self.path)


def fits_whole(job: Job) -> bool:
    """A small file not yet begun goes in one request (POST with its MD5)."""
    return job.size <= min(job.chunk_size, WHOLE_FILE_LIMIT) and job.upload_url is None


def job_from_record(rec: JobRecord) -> Job:
    """A job as the engine drives it, from its journal row."""
    return Job(
        id=rec.id,
        path=rec.path,
        size=rec.size,
        identity=rec.identity,
        fingerprint=rec.fingerprint,
        chunk_size=rec.chunk_size,
        priority=rec.priority,
        state=rec.state,
        upload_id=rec.upload_id,
        upload_url=rec.upload_url,
        offset=rec.offset,
        sent=rec.offset,
        attempts=rec.attempts,
        last_error=rec.last_error,
        md5=rec.md5,
        resumed_from=rec.resumed_from or 0,
        creating_since=rec.creating_since,
        steps=rec.steps,
        counted_sent=rec.offset,
    )
