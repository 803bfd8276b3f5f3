"""Plain dataclasses the engine emits; front ends (headless, dashboard) subscribe to them."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field


class JobState(enum.StrEnum):
    """Where a job stands; the journal stores these values."""

    QUEUED = "queued"
    HASHING = "hashing"  # re-hashing the sent prefix before resuming
    UPLOADING = "uploading"
    FINALIZING = "finalizing"
    REGISTERING = "registering"  # data file / data unit steps (collections)
    PAUSED = "paused"
    DONE = "done"
    SKIPPED = "skipped"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in (JobState.DONE, JobState.SKIPPED, JobState.FAILED, JobState.CANCELLED)

    @property
    def active(self) -> bool:
        return self in (
            JobState.HASHING,
            JobState.UPLOADING,
            JobState.FINALIZING,
            JobState.REGISTERING,
        )


@dataclass(frozen=True, slots=True)
class Event:
    """Base class of every engine event."""


@dataclass(frozen=True, slots=True)
class ScanProgress(Event):
    """The pre-scan's running totals (emitted a few times per second while it runs)."""

    files: int
    bytes: int
    duplicates: int
    already_uploaded: int
    skipped: int
    done: bool = False
    failed: int = 0  # named paths that cannot be uploaded (missing, special): not skips


@dataclass(frozen=True, slots=True)
class JobQueued(Event):
    job_id: int
    path: str  # display form (escaped)
    size: int
    resumed: bool = False


@dataclass(frozen=True, slots=True)
class JobStateChanged(Event):
    """Any state change; `message` explains pauses, retries and failures."""

    job_id: int
    state: JobState
    message: str = ""


@dataclass(frozen=True, slots=True)
class JobProgress(Event):
    """Throttled to a few per second per job."""

    job_id: int
    sent: int  # bytes acknowledged or in flight
    size: int
    rate: float  # bytes/second, smoothed
    eta: float | None  # seconds


@dataclass(frozen=True, slots=True)
class JobDone(Event):
    job_id: int
    path: str
    size: int
    md5: str
    upload_id: str
    resumed_from: int


@dataclass(frozen=True, slots=True)
class JobSkipped(Event):
    job_id: int | None
    path: str
    reason: str


@dataclass(frozen=True, slots=True)
class JobFailed(Event):
    job_id: int | None
    path: str
    error: str
    resumable: bool = False  # True: left paused, `resume` continues it


@dataclass(frozen=True, slots=True)
class LogMessage(Event):
    """A line for the event log: resumes, retries, warnings."""

    level: str  # "info" | "warning" | "error"
    message: str
    job_id: int | None = None


@dataclass(frozen=True, slots=True)
class TotalProgress(Event):
    """Batch totals, throttled like JobProgress."""

    bytes_done: int
    bytes_total: int
    files_done: int
    files_total: int
    rate: float
    eta: float | None
    eta_low: float | None
    eta_high: float | None
    counts: dict[str, int] = field(default_factory=dict)
    stalled: bool = False  # jobs are active but no byte moved for longer than usual


@dataclass(frozen=True, slots=True)
class JobRetrying(Event):
    """A transient error: the job waits `delay` seconds, then makes attempt `attempt`."""

    job_id: int
    attempt: int
    budget: int  # attempts allowed before the job is left paused (resumable)
    delay: float
    error: str


@dataclass(frozen=True, slots=True)
class BackendState(Event):
    """The backend answers again (`ok`), or uploads to it fail since `failing_since`
    (seconds since the epoch) with `error`."""

    ok: bool
    failing_since: float | None
    error: str = ""


@dataclass(frozen=True, slots=True)
class FatalStop(Event):
    """Everything stopped (authentication error, origin refused...)."""

    error: str


Listener = Callable[[Event], None]


@dataclass(frozen=True, slots=True)
class UnitRegistered(Event):
    """A data unit was created (or found) in a data collection for these files."""

    unit_id: object
    collection: int
    paths: list[str]


@dataclass(frozen=True, slots=True)
class JobElsewhere(Event):
    """Another synapse-tui process drives this job, or has finished it: this one left it
    alone (the headless summary counts these as `elsewhere`)."""

    job_id: int
    path: str
    reason: str
