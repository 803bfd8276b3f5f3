"""The job queue: one row per job with state, name, size, progress, speed, ETA and attempts."""

from __future__ import annotations

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
from textual.timer import Timer

from synapse_tui.engine.events import Event, JobQueued
from synapse_tui.engine.queue_view import Ask
from synapse_tui.ui.colours import rich_style
from synapse_tui.ui.messages import JobView, QueueWindow
from synapse_tui.ui.widgets.job_rows import (
    COLUMNS,
    STATE_LABELS,
    JobRow,
    column_widths,
    line_strip,
    monotonic,
    plain_cells,
    state_key,
)
from synapse_tui.ui.widgets.queue_fetch import Asker, Source
from synapse_tui.ui.widgets.queue_keys import QueueCursor
from synapse_tui.ui.widgets.queue_model import QueueModel

NULL = Style()
# Rows kept above the first active row when the queue follows the uploads.
FOLLOW_CONTEXT = 2
MARGIN = 20  # rows held above and below the screen: small moves need no question
MIN_ROWS = 20  # a hidden pane still holds this many (it has no height yet)
GROW_EVERY = 1.0  # seconds between two layouts for a queue that grows

__all__ = ["JobQueue", "JobRow"]


class JobQueue(QueueCursor, ScrollView, can_focus=True):
    """Every job of the engine, one line each; `enter` opens the highlighted job's details.

    Virtual: it holds only the rows on screen and a margin (QueueModel) and asks the engine
    for the window it shows (Asker), by position or by job id; events update the rows held.

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
        Binding("slash", "filter", "Filter", show=False),
        Binding("escape", "clear_filter", "All jobs", show=False),
    ]

    cursor_row: reactive[int] = reactive(0, init=False)
    """Position of the highlighted job (in queue order, among the filter's jobs)."""
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
        self.model = QueueModel()
        self.asker = Asker(self._ask, self._take)
        self._cursor_id: int | None = None  # the job under the cursor, once held
        self._shown: dict[int, tuple[str, ...]] = {}  # job id -> the cells on screen
        self._lines: dict[int, Strip] = {}  # job id -> its rendered line (cursor off)
        self._names: dict[int, str] = {}  # job id -> its path as shown (relative to base)
        self._width = 0  # the width the cached lines were made for
        self._resized = 0.0  # when the virtual size last changed (monotonic)
        self._grow_timer: Timer | None = None

    def on_mount(self) -> None:
        self._update_summary()
        self._resize_virtual()
        self.set_interval(1.0, self._tick)

    def on_unmount(self) -> None:
        self.asker.close()

    def attach(self, source: Source | None) -> None:
        """Ask `source` (a bridge's `window`) for the rows shown; None: ask nobody."""
        self.asker.source = source
        if source is not None:
            self.asker.kick()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._lines.clear()  # theme or focus changed: colours are baked into the lines

    # -- model ------------------------------------------------------------------------------

    @property
    def rows_by_id(self) -> dict[int, JobRow]:
        """The rows held: those shown and a margin (never the whole queue)."""
        return self.model.by_id

    @property
    def highlighted_job(self) -> JobRow | None:
        return self.model.row_at(self.cursor_row)

    def counts(self) -> dict[str, int]:
        """Jobs by state (the engine's counters)."""
        return self.model.state_counts()

    def apply(self, events_: list[Event], views: dict[int, JobView]) -> None:
        """Fold a batch of engine events into the held rows, redrawing only the changed
        lines; ask for a new window when rows may have entered, left or moved."""
        added = False
        for event in events_:
            if not isinstance(event, JobQueued) or event.job_id in self.model.by_id:
                continue
            if self.model.append(event, self._limit()):
                self._names[event.job_id] = self._relative(event.path)
                added = True
        touched, moved = self.model.fold(events_, views)
        self._resize_virtual()
        self._redraw(touched)
        if added:
            self.refresh()
        self._update_summary()
        top = self._view_top()
        if moved or not self.model.holds(top, top + self._visible()):
            # Rows may have come, gone or moved (and the counts changed): one question for
            # the batch, at most one in flight (Asker).
            self.asker.kick()

    def _redraw(self, job_ids: set[int]) -> None:
        width = self.scrollable_content_region.width
        for job_id in job_ids:
            row = self.model.by_id.get(job_id)
            index = self.model.position(job_id)
            if row is None or index is None:
                continue
            cells = self._plain_cells(row, width)
            if self._shown.get(job_id) != cells:  # the eye would see it: redraw the line
                self._shown[job_id] = cells
                self._lines.pop(job_id, None)
                self.refresh_line(index + 1)

    def _tick(self) -> None:
        """Once a second: retry countdowns and stalled uploads change with the clock."""
        timed = {r.job_id for r in self.model.rows if r.retry is not None or r.state == "uploading"}
        if timed:
            self._redraw(timed)

    def mark_pausing(self, job_id: int) -> None:
        """Say `pausing…` at once: the engine pauses when the piece in flight is sent."""
        row = self.model.by_id.get(job_id)
        if row is not None and row.state not in ("paused", "done", "failed", "cancelled"):
            row.pausing = True
            self._redraw({job_id})

    # -- the window -------------------------------------------------------------------------

    def _visible(self) -> int:
        return max(0, self.scrollable_content_region.height - 1)  # rows under the header

    def _view_top(self) -> int:
        return round(self.scroll_y)

    def _limit(self) -> int:
        """Rows held: a screen, and a margin above and below for small moves."""
        return max(self._visible(), MIN_ROWS) + 2 * MARGIN

    def _ask(self) -> Ask:
        """The window the view needs now."""
        top, visible = self._view_top(), max(self._visible(), MIN_ROWS)
        return self.model.ask(top, visible, self._limit(), MARGIN, following=self.following)

    def _take(self, ask: Ask, window: QueueWindow) -> None:
        """A window arrived: hold it, keep the cursor on its job, follow the uploads."""
        before = self.model.position(self._cursor_id) if self._cursor_id is not None else None
        layout = (self.model.top, [r.job_id for r in self.model.rows])
        self.model.take(window)
        for row in self.model.rows:
            if row.job_id not in self._names:
                self._names[row.job_id] = self._relative(row.path)
        if len(self._names) > 4 * self._limit():  # what rows long gone left behind
            held = self.model.by_id
            self._names = {k: v for k, v in self._names.items() if k in held}
            self._lines = {k: v for k, v in self._lines.items() if k in held}
            self._shown = {k: v for k, v in self._shown.items() if k in held}
        self._resize_virtual()
        self._redraw(set(self.model.by_id))  # the lines whose cells changed
        if layout != (self.model.top, [r.job_id for r in self.model.rows]):
            self.refresh()  # rows came, went or moved
        now = self.model.position(self._cursor_id) if self._cursor_id is not None else None
        if now is not None and before is not None and now != before and not self.following:
            # Rows above the cursor came or went: the view moves with its job.
            self.scroll_to(y=self.scroll_y + now - before, animate=False, immediate=True)
            self.set_reactive(JobQueue.cursor_row, now)
        elif now is None:
            self._cursor_id = None
            self.cursor_row = self.cursor_row  # clamp to the view's length
            under = self.model.row_at(self.cursor_row)
            self._cursor_id = under.job_id if under is not None else None
        if self.following and window.anchor is not None:
            self._follow(window.anchor)
        self._update_summary()

    # -- following the uploads ------------------------------------------------------------

    def _follow(self, anchor: int) -> None:
        """Bring the first active row into view (with a little context) if it is not."""
        index = self.model.position(anchor)
        visible = self._visible()
        top = self._view_top()
        if index is None or visible <= 0 or top <= index < top + visible:
            return  # in view, or the pane is hidden (it follows when shown: on_resize)
        self.scroll_to(y=max(0, index - FOLLOW_CONTEXT), animate=False, immediate=True)
        self.cursor_row = index

    def watch_following(self) -> None:
        self._update_summary()
        if self.following:
            self.asker.kick()

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        top = round(new_value)
        if not self.model.holds(top, top + self._visible()):
            self.asker.kick()  # a wheel, the scrollbar or a key moved past the rows held

    # -- filter by state -------------------------------------------------------------------

    def set_filter(self, view_filter: str | None) -> None:
        if view_filter == self.model.filter:
            return
        self.model.clear(view_filter)
        self._cursor_id = None
        self.set_reactive(JobQueue.cursor_row, 0)
        self.scroll_to(y=0, animate=False, immediate=True)
        self._resize_virtual()
        self._update_summary()
        self.refresh()
        self.asker.kick()

    def cells(self, job_id: int) -> tuple[Text, ...]:
        """The job's cells as shown, styled (State, Name, Size, Progress, Speed, ETA, Try)."""
        row = self.model.by_id[job_id]
        out = []
        cells = self._plain_cells(row, self.scrollable_content_region.width)
        for cell, style in zip(cells, self._cell_styles(row), strict=True):
            text = Text(cell)
            if style:
                text.stylize(style)
            out.append(text)
        return tuple(out)

    def _update_summary(self) -> None:
        text = self._summary()
        if text != self.border_subtitle:  # setting it redraws the whole pane
            self.border_subtitle = text

    def _summary(self) -> str:
        return self.model.summary(self.following, self.cursor_row, self._visible())

    def _resize_virtual(self, at_once: bool = False) -> bool:
        """Whether the virtual size changed now (a scroll to its new rows waits a refresh)."""
        size = Size(self.scrollable_content_region.width, self.model.total + 1)
        if size == self.virtual_size:
            return False
        # A new virtual size lays out the whole screen: while a scan queues files in every
        # batch, the queue grows once a second (rows past the end wait that long).
        now = monotonic()
        grows = size.width == self.virtual_size.width and size.height > self.virtual_size.height
        if grows and not at_once and now - self._resized < GROW_EVERY:
            if self._grow_timer is None:
                self._grow_timer = self.set_timer(GROW_EVERY, self._grow)
            return False
        self._resized = now
        self.virtual_size = size
        return True

    def _grow(self) -> None:
        self._grow_timer = None
        self._resize_virtual()

    # -- cells ------------------------------------------------------------------------------

    def _relative(self, path: str) -> str:
        # By prefix, as the log does: os.path.relpath folds `..` away, and a folder named
        # `link/..` (the link target's parent) would seem to hold the current folder's files.
        prefix = self.base.rstrip("/") + "/" if self.base else ""
        if prefix and path.startswith(prefix) and len(path) > len(prefix):
            return path[len(prefix) :]
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
        row = self.model.row_at(index)
        if row is None:  # past the end, or not here yet (its window is on its way)
            blank = Strip.blank(width, self.rich_style)
            if 0 <= index < self.model.total:
                return line_strip(
                    ("  …",) + ("",) * (len(COLUMNS) - 1),
                    (NULL,) * len(COLUMNS),
                    self.rich_style,
                    width,
                )
            return blank
        job_id = row.job_id
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
        self.asker.kick()  # more rows to hold, or a hidden pane shown: follow now

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None or offset.y < 1:
            return
        index = round(self.scroll_y) + offset.y - 1
        if 0 <= index < self.model.total:
            if index == self.cursor_row and event.chain >= 2:
                self.action_open_job()
            self.following = False
            self.cursor_row = index

    # -- actions ----------------------------------------------------------------------------

    def action_open_job(self) -> None:
        row = self.highlighted_job
        if row is not None:
            self.post_message(self.OpenJob(row.job_id))
