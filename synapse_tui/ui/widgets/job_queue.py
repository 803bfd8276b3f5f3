"""The job queue: one row per job with state, name, size, progress, speed, ETA and attempts."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import ClassVar

from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.coordinate import Coordinate
from textual.message import Message
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey

from synapse_tui.engine.events import (
    Event,
    JobDone,
    JobProgress,
    JobQueued,
    JobStateChanged,
)
from synapse_tui.ui.colours import rich_style
from synapse_tui.ui.messages import JobView
from synapse_tui.units import format_duration, format_rate, format_size

STATE_LABELS = {
    "queued": ("· queued", "foreground"),
    "hashing": ("# hashing", "secondary"),
    "uploading": ("▲ upload", "primary"),
    "finalizing": ("◆ final", "primary"),
    "registering": ("◇ regist", "accent"),
    "paused": ("‖ paused", "warning"),
    "done": ("✓ done", "success"),
    "skipped": ("- skip", "foreground"),
    "failed": ("✗ failed", "error"),
    "cancelled": ("⊘ cancel", "foreground"),
}
ACTIVE = ("hashing", "uploading", "finalizing", "registering")
COLUMNS = ("State", "Name", "Size", "Progress", "Speed", "ETA", "Try")
WIDTHS = (8, 0, 9, 10, 10, 6, 3)  # fixed widths so live values never get cropped
FIXED = sum(WIDTHS) + 2 * len(COLUMNS) + 2  # every column but the name, with padding


@dataclass
class JobRow:
    """The queue's own record of a job, fed by engine events."""

    job_id: int
    path: str
    size: int
    state: str = "queued"
    sent: int = 0
    rate: float = 0.0
    eta: float | None = None
    attempts: int = 0
    error: str | None = None


def progress_bar(done: int, total: int, width: int = 5) -> str:
    fraction = 1.0 if total <= 0 else max(0.0, min(1.0, done / total))
    filled = round(fraction * width)
    return "█" * filled + "░" * (width - filled) + f"{fraction * 100:4.0f}%"


def short_rate(rate: float) -> str:
    """`12.3MiB/s`: a rate that fits the Speed column."""
    return format_rate(rate).replace(" ", "")


class JobQueue(DataTable[Text | str]):
    """Every job of this session; `enter` opens the highlighted job's details."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open_job", "Details", show=True),
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
        Binding("plus", "screen.concurrency(1)", "Conc +", show=False),
        Binding("minus", "screen.concurrency(-1)", "Conc -", show=False),
    ]

    class OpenJob(Message):
        """The user asked for a job's details."""

        def __init__(self, job_id: int) -> None:
            super().__init__()
            self.job_id = job_id

    def __init__(self, base: str = "", *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=False)
        self.base = base
        self.rows_by_id: dict[int, JobRow] = {}
        self._shown: dict[tuple[int, int], str] = {}
        self._name_width = 24

    def on_mount(self) -> None:
        for label, width in zip(COLUMNS, WIDTHS, strict=True):
            self.add_column(label, key=label.lower(), width=width or self._name_width)
        self.border_subtitle = self._summary()

    def on_resize(self, event: events.Resize) -> None:
        width = max(10, event.size.width - FIXED)
        if width != self._name_width:
            self._name_width = width
            column = self.columns.get(ColumnKey("name"))
            if column is not None:
                column.width = width
                self._require_update_dimensions = True
                self.refresh()
            for row in self.rows_by_id.values():
                self._set(row, 1, self._name_cell(row))

    # -- model ------------------------------------------------------------------------------

    @property
    def highlighted_job(self) -> JobRow | None:
        if not self.rows_by_id or self.cursor_row < 0:
            return None
        try:
            key = self.coordinate_to_cell_key(Coordinate(self.cursor_row, 0)).row_key
        except Exception:
            return None
        return self.rows_by_id.get(int(key.value or 0))

    def apply(self, events_: list[Event], views: dict[int, JobView]) -> None:
        """Fold a batch of engine events into the table, repainting only changed cells."""
        touched: set[int] = set()
        for event in events_:
            if isinstance(event, JobQueued):
                row = self.rows_by_id.get(event.job_id)
                if row is None:
                    row = JobRow(event.job_id, event.path, event.size)
                    self.rows_by_id[row.job_id] = row
                    self.add_row(*self._cells(row), key=str(row.job_id))
                row.state = "queued"
            elif isinstance(event, JobStateChanged) and event.job_id in self.rows_by_id:
                row = self.rows_by_id[event.job_id]
                row.state = event.state.value
                if event.state.value not in ACTIVE:
                    row.rate, row.eta = 0.0, None
            elif isinstance(event, JobProgress) and event.job_id in self.rows_by_id:
                row = self.rows_by_id[event.job_id]
                row.sent, row.rate, row.eta = event.sent, event.rate, event.eta
            elif isinstance(event, JobDone) and event.job_id in self.rows_by_id:
                row = self.rows_by_id[event.job_id]
                row.state, row.sent = "done", row.size
            else:
                continue
            touched.add(row.job_id)
        for job_id, view in views.items():
            row = self.rows_by_id.get(job_id)
            if row is not None:
                row.state, row.sent, row.attempts = view.state, view.sent, view.attempts
                row.error = view.last_error
                touched.add(job_id)
        for job_id in touched:
            row = self.rows_by_id[job_id]
            for column, cell in enumerate(self._cells(row)):
                self._set(row, column, cell)
        self.border_subtitle = self._summary()

    def _summary(self) -> str:
        n = len(self.rows_by_id)
        return f"{n} job{'s' if n != 1 else ''}" if n else "empty: mark files, press u"

    def _set(self, row: JobRow, column: int, cell: Text | str) -> None:
        plain = cell.plain if isinstance(cell, Text) else cell
        key = (row.job_id, column)
        if self._shown.get(key) == plain:
            return  # the eye would not see it: skip the repaint
        self._shown[key] = plain
        with contextlib.suppress(Exception):  # a row removed meanwhile
            self.update_cell(str(row.job_id), COLUMNS[column].lower(), cell)

    def _name_cell(self, row: JobRow) -> Text:
        name = row.path
        if self.base:
            try:
                rel = os.path.relpath(name, self.base)
            except ValueError:
                rel = name
            if not rel.startswith(".."):
                name = rel
        text = Text(name, no_wrap=True)
        if text.cell_len > self._name_width:
            text = Text("…" + name[-(self._name_width - 1) :], no_wrap=True)
        return text

    def _cells(self, row: JobRow) -> tuple[Text | str, ...]:
        label, colour = STATE_LABELS.get(row.state, (row.state, "foreground"))
        state = Text(label)
        if self.is_mounted:
            state.stylize(rich_style(self.app.theme_variables.get(colour, "")))
        active = row.state in ACTIVE
        done = row.size if row.state == "done" else row.sent
        return (
            state,
            self._name_cell(row),
            Text(format_size(row.size), justify="right"),
            progress_bar(done, row.size),
            Text(short_rate(row.rate) if active and row.rate > 0 else "", justify="right"),
            Text(format_duration(row.eta) if active and row.eta else "", justify="right"),
            Text(str(row.attempts) if row.attempts else "", justify="right"),
        )

    # -- actions ----------------------------------------------------------------------------

    def action_open_job(self) -> None:
        row = self.highlighted_job
        if row is not None:
            self.post_message(self.OpenJob(row.job_id))

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for row in self.rows_by_id.values():
            out[row.state] = out.get(row.state, 0) + 1
        return out
