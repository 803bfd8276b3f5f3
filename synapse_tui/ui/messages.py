"""Textual messages the bridge posts: engine events, batched and coalesced."""

from __future__ import annotations

from dataclasses import dataclass, field

from textual.message import Message

from synapse_tui.engine.events import Event


@dataclass(frozen=True, slots=True)
class JobView:
    """What the queue shows of one job, read in the engine thread (a snapshot)."""

    job_id: int
    state: str
    sent: int
    size: int
    attempts: int
    last_error: str | None


@dataclass(frozen=True, slots=True)
class JobDetails:
    """Everything the job details screen shows, gathered in the engine thread."""

    job_id: int
    path: str
    size: int
    state: str
    upload_id: str | None
    upload_url: str | None
    offset: int
    sent: int
    md5: str | None
    attempts: int
    resumed_from: int
    last_error: str | None
    errors: list[tuple[float, str]] = field(default_factory=list)
    collection: int | None = None
    spec: str | None = None
    data_file_id: object = None
    unit_id: object = None


@dataclass(frozen=True, slots=True)
class QueueWindow:
    """A window of the engine's queue, as the queue pane asked for it (engine.queue_view)."""

    offset: int  # the position of rows[0] among the jobs of the view
    total: int  # the jobs of the view (its state filter)
    rows: list[WindowRow]
    anchor: int | None = None  # the job id the window was found by (None: by offset)
    counts: dict[str, int] = field(default_factory=dict)  # jobs by state, every view's


@dataclass(frozen=True, slots=True)
class WindowRow:
    """One job of a window: what the queue shows of it."""

    job_id: int
    path: str
    size: int
    state: str
    sent: int
    attempts: int
    last_error: str | None


class EngineUpdate(Message):
    """A batch of engine events, in order; progress events are coalesced (latest only)."""

    def __init__(self, events: list[Event], views: dict[int, JobView]) -> None:
        super().__init__()
        self.events = events
        self.views = views


class EngineStarted(Message):
    """The engine thread is up; `resumed` unfinished jobs came back from the journal."""

    def __init__(self, resumed: int) -> None:
        super().__init__()
        self.resumed = resumed


class EngineError(Message):
    """The engine could not start or an engine-side call failed."""

    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error
