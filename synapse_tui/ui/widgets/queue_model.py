"""The rows a queue pane holds: one window of the engine's queue, kept fresh by its events."""

from __future__ import annotations

from synapse_tui.engine.events import (
    Event,
    JobDone,
    JobProgress,
    JobQueued,
    JobRetrying,
    JobState,
    JobStateChanged,
    TotalProgress,
)
from synapse_tui.engine.queue_view import ACTIVE_FILTER, Ask
from synapse_tui.ui.messages import JobView, QueueWindow
from synapse_tui.ui.widgets.job_rows import ACTIVE, JobRow, monotonic

# What `/` steps through in the queue pane: every job, then one state (or the active ones).
FILTERS: tuple[str | None, ...] = (None, ACTIVE_FILTER, "queued", "paused", "failed", "done")


class QueueModel:
    """A contiguous run of the view's rows from position `top`, and what is known of the
    rest: how many there are (`total`) and how many are in each state (`counts`)."""

    def __init__(self) -> None:
        self.filter: str | None = None
        self.top = 0
        self.total = 0
        self.rows: list[JobRow] = []
        self.by_id: dict[int, JobRow] = {}
        self.counts: dict[str, int] = {}  # the engine's counters, once it gave them
        self.errors: dict[int, str] = {}

    # -- questions ----------------------------------------------------------------------------

    def position(self, job_id: int) -> int | None:
        row = self.by_id.get(job_id)
        if row is None:
            return None
        # The rows are few (a screen and a margin): a scan costs less than an index to keep.
        return self.top + self.rows.index(row)

    def row_at(self, index: int) -> JobRow | None:
        i = index - self.top
        return self.rows[i] if 0 <= i < len(self.rows) else None

    def holds(self, start: int, stop: int) -> bool:
        """True if every row of positions [start, stop) that exists is held."""
        stop = min(stop, self.total)
        return start >= stop or (self.top <= start and stop <= self.top + len(self.rows))

    def state_counts(self) -> dict[str, int]:
        """Jobs by state: the engine's counters, or (before it gave them) the held rows'."""
        if self.counts:
            return self.counts
        out: dict[str, int] = {}
        for row in self.rows:
            out[row.state] = out.get(row.state, 0) + 1
        return out

    def summary(self, following: bool, cursor: int, visible: int) -> str:
        """The pane's subtitle: where the cursor is, how many jobs, the filter, following."""
        n = self.total
        shown = f" {self.filter}" if self.filter else ""
        if not n:
            return f"no{shown} jobs · /: filter" if shown else "empty: mark files, press u"
        follow = "following" if following else "f: follow"
        where = f"{min(cursor + 1, n):,}/" if n > visible else ""
        return f"{where}{n:,}{shown} job{'s' if n != 1 else ''} · {follow}"

    def matches(self, state: str) -> bool:
        if self.filter is None:
            return True
        if self.filter == ACTIVE_FILTER:
            return state in ACTIVE
        return state == self.filter

    def ask(self, top: int, visible: int, limit: int, margin: int, *, following: bool) -> Ask:
        """The window a view `visible` rows high from position `top` needs: by job id when
        the rows held say which jobs are there (an index walk of the window's length), by
        position only when the view jumped past them (`g`, `G`, the scrollbar)."""
        state = self.filter
        held = self.row_at(top)
        if following:  # the engine finds the first active job; its position from ours
            known = (self.rows[0].job_id, self.top) if self.rows else None
            at = held.job_id if held is not None else None
            return Ask(max(0, top - margin), limit, state, at, True, visible, known)
        if held is not None:  # the same jobs where they are, whatever moved above them
            return Ask(top, limit, state, held.job_id, False, margin, (held.job_id, top))
        end = self.top + len(self.rows)
        if self.rows and end <= top < end + margin:  # just below: on from the last row held
            last = self.rows[-1].job_id
            return Ask(top, limit, state, last, False, 1, (last, end - 1))
        return Ask(max(0, top - margin), limit, state)

    # -- changes ------------------------------------------------------------------------------

    def clear(self, view_filter: str | None) -> None:
        self.filter = view_filter
        self.top, self.rows, self.by_id = 0, [], {}
        self.total = self._total_from_counts() if self.counts else 0

    def take(self, window: QueueWindow) -> None:
        """The engine's answer replaces the held rows; rows held before keep what only
        events told (rate, ETA, a retry countdown, `pausing…`)."""
        rows: list[JobRow] = []
        by_id: dict[int, JobRow] = {}
        for w in window.rows:
            row = self.by_id.get(w.job_id)
            if row is None:
                row = JobRow(w.job_id, w.path, w.size)
            if w.state != row.state:
                row.pausing = row.pausing and w.state in ACTIVE
                row.retry = None if w.state not in ACTIVE else row.retry
            row.state, row.sent = w.state, w.sent
            if row.retry is None or w.attempts:
                row.attempts = w.attempts  # an answer read before the retry lags it
            row.error = w.last_error or self.errors.get(w.job_id)
            if w.state not in ACTIVE:
                row.rate, row.eta = 0.0, None
            rows.append(row)
            by_id[row.job_id] = row
        self.top, self.total, self.rows, self.by_id = window.offset, window.total, rows, by_id
        self.errors = {k: v for k, v in self.errors.items() if k in by_id}
        if window.counts:
            self.counts = window.counts

    def append(self, event: JobQueued, room: int) -> bool:
        """A new job at the end of the view, shown at once when the held rows reach the
        end and have room (else the next window brings it)."""
        if not self.matches("queued"):
            return False
        self.total += 1
        last = self.rows[-1].job_id if self.rows else -1
        at_end = self.top + len(self.rows) >= self.total - 1
        if event.job_id <= last or not at_end or len(self.rows) >= room:
            return False
        row = JobRow(event.job_id, event.path, event.size)
        self.rows.append(row)
        self.by_id[row.job_id] = row
        return True

    def fold(self, events: list[Event], views: dict[int, JobView]) -> tuple[set[int], bool]:
        """Apply a batch to the held rows: (the held rows it changed, whether the window
        may have changed: rows entered, left or moved)."""
        touched: set[int] = set()
        moved = False
        for event in events:
            if isinstance(event, TotalProgress):
                self.counts = dict(event.counts)
                self.total = self._total_from_counts()
                if self.filter is None:  # rows queued after the totals were made
                    self.total = max(self.total, self.top + len(self.rows))
                continue
            if isinstance(event, JobQueued | JobStateChanged | JobDone):
                moved = True
            row = self.by_id.get(getattr(event, "job_id", None) or -1)
            if row is None:
                continue
            if isinstance(event, JobQueued):
                row.state, row.pausing, row.retry = "queued", False, None
            elif isinstance(event, JobStateChanged):
                if event.state.value != row.state:
                    row.pausing = row.pausing and event.state.value in ACTIVE
                    row.retry = None
                row.state = event.state.value
                if event.state in (JobState.FAILED, JobState.PAUSED) and event.message:
                    row.error = self.errors[row.job_id] = event.message
                if event.state.value not in ACTIVE:
                    row.rate, row.eta = 0.0, None
            elif isinstance(event, JobProgress):
                if event.sent != row.sent:
                    row.retry = None  # bytes move again
                    row.moved(monotonic())
                row.sent, row.rate, row.eta = event.sent, event.rate, event.eta
            elif isinstance(event, JobRetrying):
                row.retry = (event.attempt, event.budget, monotonic() + event.delay)
                row.attempts = event.attempt
                row.rate, row.eta = 0.0, None
            elif isinstance(event, JobDone):
                row.state, row.sent, row.retry = "done", row.size, None
            touched.add(row.job_id)
        for job_id, view in views.items():
            row = self.by_id.get(job_id)
            if row is not None:
                row.state, row.sent = view.state, view.sent
                if row.retry is None or view.attempts:
                    row.attempts = view.attempts  # a view made before the retry lags it
                row.error = view.last_error
                touched.add(job_id)
        return touched, moved

    def _total_from_counts(self) -> int:
        if self.filter is None:
            return sum(self.counts.values())
        if self.filter == ACTIVE_FILTER:
            return sum(self.counts.get(s, 0) for s in ACTIVE)
        return self.counts.get(self.filter, 0)
