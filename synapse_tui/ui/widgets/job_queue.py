"""The job queue: one row per job with state, name, size, progress, speed, ETA and attempts."""

from __future__ import annotations

import os
from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from synapse_tui.engine.events import (
    Event,
    JobDone,
    JobProgress,
    JobQueued,
    JobRetrying,
    JobStateChanged,
)
from synapse_tui.ui.colours import rich_style
from synapse_tui.ui.messages import JobView
from synapse_tui.ui.widgets.job_rows import (
    ACTIVE,
    COLUMNS,
    STATE_LABELS,
    JobRow,
    column_widths,
    line_strip,
    monotonic,
    plain_cells,
    state_key,
)

NULL = Style()
# Rows kept above the first active row when the queue follows the uploads.
FOLLOW_CONTEXT = 2

__all__ = ["JobQueue", "JobRow"]


class JobQueue(ScrollView, can_focus=True):
    """Every job of this session, one line each; `enter` opens the highlighted job's details.

    A Line API widget rather than a DataTable: during uploads every row changes four times a
    second, and a DataTable re-renders each of its cells through Rich on every change (about
    25 ms of UI-thread CPU per frame with eight uploads, which key presses then wait for).
    Here a changed row is one cached line of plain segments, and only that line is redrawn.
    """

    DEFAULT_CSS = """
    JobQueue {
        background: $surface;
        color: $foreground;
        overflow-x: hidden;
        overflow-y: auto;
        & > .job-queue--header {
            text-style: bold;
            background: $panel;
            color: $foreground;
        }
        &:ansi > .job-queue--header {
            background: ansi_bright_blue;
            color: ansi_default;
        }
        & > .job-queue--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
            text-style: $block-cursor-blurred-text-style;
        }
        &:focus > .job-queue--cursor {
            background: $block-cursor-background;
            color: $block-cursor-foreground;
            text-style: $block-cursor-text-style;
        }
    }
    """
    COMPONENT_CLASSES: ClassVar[set[str]] = {"job-queue--header", "job-queue--cursor"}

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open_job", "Details", show=True),
        Binding("j,down", "cursor_down", "Down", show=False),
        Binding("k,up", "cursor_up", "Up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("home,g", "first", "First", show=False),
        Binding("end,G", "last", "Last, follow", show=False),
        Binding("f", "follow", "Follow", show=False),
    ]

    cursor_row: reactive[int] = reactive(0, init=False)
    """Index of the highlighted job (in queue order)."""
    following: reactive[bool] = reactive(True, init=False)
    """Keep the first active row in view while uploads run; a manual move turns it off."""

    class OpenJob(Message):
        """The user asked for a job's details."""

        def __init__(self, job_id: int) -> None:
            super().__init__()
            self.job_id = job_id

    def __init__(self, base: str = "", *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.base = base
        self.rows_by_id: dict[int, JobRow] = {}
        self._order: list[int] = []  # job ids in queue order
        self._index: dict[int, int] = {}  # job id -> position in _order
        self._shown: dict[int, tuple[str, ...]] = {}  # job id -> the cells on screen
        self._lines: dict[int, Strip] = {}  # job id -> its rendered line (cursor off)
        self._names: dict[int, str] = {}  # job id -> its path as shown (relative to base)
        self._width = 0  # the width the cached lines were made for
        self._active: set[int] = set()  # ids of the rows in an active state
        self._timed: set[int] = set()  # rows whose cells change with the clock (retry, stall)

    def on_mount(self) -> None:
        self.border_subtitle = self._summary()
        self._resize_virtual()
        self.set_interval(1.0, self._tick)

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._lines.clear()  # theme or focus changed: colours are baked into the lines

    # -- model ------------------------------------------------------------------------------

    @property
    def highlighted_job(self) -> JobRow | None:
        if 0 <= self.cursor_row < len(self._order):
            return self.rows_by_id[self._order[self.cursor_row]]
        return None

    def apply(self, events_: list[Event], views: dict[int, JobView]) -> None:
        """Fold a batch of engine events into the queue, redrawing only the changed lines."""
        touched: set[int] = set()
        added = False
        for event in events_:
            if isinstance(event, JobQueued):
                row = self.rows_by_id.get(event.job_id)
                if row is None:
                    row = JobRow(event.job_id, event.path, event.size)
                    self.rows_by_id[row.job_id] = row
                    self._index[row.job_id] = len(self._order)
                    self._order.append(row.job_id)
                    self._names[row.job_id] = self._relative(row.path)
                    added = True
                row.state = "queued"
                row.state, row.pausing, row.retry = "queued", False, None
            elif isinstance(event, JobStateChanged) and event.job_id in self.rows_by_id:
                row = self.rows_by_id[event.job_id]
                if event.state.value != row.state:
                    row.pausing = row.pausing and event.state.value in ACTIVE
                    row.retry = None
                row.state = event.state.value
                if event.state.value not in ACTIVE:
                    row.rate, row.eta = 0.0, None
            elif isinstance(event, JobProgress) and event.job_id in self.rows_by_id:
                row = self.rows_by_id[event.job_id]
                if event.sent != row.sent:
                    row.retry = None  # bytes move again
                    row.moved(monotonic())
                row.sent, row.rate, row.eta = event.sent, event.rate, event.eta
            elif isinstance(event, JobRetrying) and event.job_id in self.rows_by_id:
                row = self.rows_by_id[event.job_id]
                row.retry = (event.attempt, event.budget, monotonic() + event.delay)
                row.attempts = event.attempt
                row.rate, row.eta = 0.0, None
            elif isinstance(event, JobDone) and event.job_id in self.rows_by_id:
                row = self.rows_by_id[event.job_id]
                row.state, row.sent, row.retry = "done", row.size, None
            else:
                continue
            touched.add(row.job_id)
        for job_id, view in views.items():
            row = self.rows_by_id.get(job_id)
            if row is not None:
                row.state, row.sent = view.state, view.sent
                if row.retry is None or view.attempts:
                    row.attempts = view.attempts  # a view made before the retry lags it
                row.error = view.last_error
                touched.add(job_id)
        if added:
            self._resize_virtual()
        for job_id in touched:
            row = self.rows_by_id[job_id]
            (self._active.add if row.state in ACTIVE else self._active.discard)(job_id)
            timed = row.retry is not None or row.state == "uploading"
            (self._timed.add if timed else self._timed.discard)(job_id)
        self._redraw(touched)
        if added:
            self.border_subtitle = self._summary()
        if self.following:
            self._follow()

    def _redraw(self, job_ids: set[int]) -> None:
        width = self.scrollable_content_region.width
        for job_id in job_ids:
            cells = self._plain_cells(self.rows_by_id[job_id], width)
            if self._shown.get(job_id) != cells:  # the eye would see it: redraw the line
                self._shown[job_id] = cells
                self._lines.pop(job_id, None)
                self.refresh_line(self._index[job_id] + 1)

    def _tick(self) -> None:
        """Once a second: retry countdowns and stalled uploads change with the clock."""
        if self._timed:
            self._redraw(set(self._timed))

    def mark_pausing(self, job_id: int) -> None:
        """Say `pausing…` at once: the engine pauses when the piece in flight is sent."""
        row = self.rows_by_id.get(job_id)
        if row is not None and row.state not in ("paused", "done", "failed", "cancelled"):
            row.pausing = True
            self._redraw({job_id})

    # -- following the uploads ------------------------------------------------------------

    def first_active(self) -> int | None:
        """The queue position of the first active row (None when nothing runs)."""
        if not self._active:
            return None
        return min(self._index[job_id] for job_id in self._active)

    def _follow(self) -> None:
        """Bring the first active row into view (with a little context) if it is not."""
        index = self.first_active()
        if index is None:
            return
        visible = self.scrollable_content_region.height - 1  # rows under the header
        top = round(self.scroll_y)
        if visible <= 0 or top <= index < top + visible:
            return  # in view, or the pane is hidden (it follows when shown: on_resize)
        self.scroll_to(y=max(0, index - FOLLOW_CONTEXT), animate=False, immediate=True)
        self.cursor_row = index

    def watch_following(self) -> None:
        self.border_subtitle = self._summary()
        if self.following:
            self._follow()

    def cells(self, job_id: int) -> tuple[Text, ...]:
        """The job's cells as shown, styled (State, Name, Size, Progress, Speed, ETA, Try)."""
        row = self.rows_by_id[job_id]
        out = []
        cells = self._plain_cells(row, self.scrollable_content_region.width)
        for cell, style in zip(cells, self._cell_styles(row), strict=True):
            text = Text(cell)
            if style:
                text.stylize(style)
            out.append(text)
        return tuple(out)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for row in self.rows_by_id.values():
            out[row.state] = out.get(row.state, 0) + 1
        return out

    def _summary(self) -> str:
        n = len(self.rows_by_id)
        if not n:
            return "empty: mark files, press u"
        follow = "following" if self.following else "f: follow"
        return f"{n} job{'s' if n != 1 else ''} · {follow}"

    def _resize_virtual(self) -> None:
        size = Size(self.scrollable_content_region.width, len(self._order) + 1)
        if size != self.virtual_size:  # a new virtual size lays out the whole screen
            self.virtual_size = size

    # -- cells ------------------------------------------------------------------------------

    def _relative(self, path: str) -> str:
        if self.base:
            try:
                rel = os.path.relpath(path, self.base)
            except ValueError:
                return path
            if not rel.startswith(".."):
                return rel
        return path

    def _plain_cells(self, row: JobRow, width: int) -> tuple[str, ...]:
        """The row's cells as text, for a queue `width` cells wide."""
        return plain_cells(row, self._names[row.job_id], column_widths(width), monotonic())

    def _cell_styles(self, row: JobRow) -> tuple[Style, ...]:
        colour = STATE_LABELS.get(state_key(row), (row.state, "foreground"))[1]
        state = rich_style(self.app.theme_variables.get(colour, "")) if self.is_mounted else NULL
        return (state,) + (NULL,) * (len(COLUMNS) - 1)

    # -- rendering --------------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        if width != self._width:
            self._width = width
            self._lines.clear()
            self._shown.clear()
        if y == 0:
            header = self.get_component_rich_style("job-queue--header")
            titles = list(COLUMNS)
            if column_widths(width)[3] < len("Progress"):
                titles[3] = "Done"  # the percentage only: no room for a bar
            return line_strip(titles, (NULL,) * len(COLUMNS), header, width)
        index = round(self.scroll_y) + y - 1
        if not 0 <= index < len(self._order):
            return Strip.blank(width, self.rich_style)
        job_id = self._order[index]
        row = self.rows_by_id[job_id]
        if index == self.cursor_row:
            cursor = self.rich_style + self.get_component_rich_style("job-queue--cursor")
            return line_strip(self._plain_cells(row, width), (NULL,) * len(COLUMNS), cursor, width)
        line = self._lines.get(job_id)
        if line is None:
            cells = self._plain_cells(row, width)
            self._shown[job_id] = cells
            line = line_strip(cells, self._cell_styles(row), self.rich_style, width)
            self._lines[job_id] = line
        return line

    def on_resize(self, event: events.Resize) -> None:
        self._resize_virtual()
        self.refresh()
        if self.following:
            self.call_after_refresh(self._follow)

    # -- cursor -----------------------------------------------------------------------------

    def validate_cursor_row(self, value: int) -> int:
        return max(0, min(value, len(self._order) - 1))

    def watch_cursor_row(self, old: int, new: int) -> None:
        self.refresh_line(old + 1)
        self.refresh_line(new + 1)
        visible = self.scrollable_content_region.height - 1  # rows under the header
        top = round(self.scroll_y)
        if new < top:
            self.scroll_to(y=new, animate=False)
        elif visible > 0 and new >= top + visible:
            self.scroll_to(y=new - visible + 1, animate=False)

    def action_cursor_down(self) -> None:
        self.following = False
        self.cursor_row += 1

    def action_cursor_up(self) -> None:
        self.following = False
        self.cursor_row -= 1

    def action_page_down(self) -> None:
        self.following = False
        self.cursor_row += max(1, self.scrollable_content_region.height - 2)

    def action_page_up(self) -> None:
        self.following = False
        self.cursor_row -= max(1, self.scrollable_content_region.height - 2)

    def action_first(self) -> None:
        self.following = False
        self.cursor_row = 0

    def action_last(self) -> None:
        """`G`: the last row, and follow the uploads again."""
        self.cursor_row = len(self._order) - 1
        self.following = True

    def action_follow(self) -> None:
        self.following = True

    def on_mouse_scroll_down(self, event: events.MouseScrollDown) -> None:
        self.following = False

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        self.following = False

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None or offset.y < 1:
            return
        index = round(self.scroll_y) + offset.y - 1
        if 0 <= index < len(self._order):
            if index == self.cursor_row and event.chain >= 2:
                self.action_open_job()
            self.following = False
            self.cursor_row = index

    # -- actions ----------------------------------------------------------------------------

    def action_open_job(self) -> None:
        row = self.highlighted_job
        if row is not None:
            self.post_message(self.OpenJob(row.job_id))
