"""The event log: resumes, retries, skips and failures, control characters escaped."""

from __future__ import annotations

import time
from collections import deque

from rich.text import Text
from textual.events import Resize
from textual.timer import Timer
from textual.widgets import RichLog

from synapse_tui.engine.events import (
    BackendState,
    Event,
    FatalStop,
    JobDone,
    JobElsewhere,
    JobFailed,
    JobQueued,
    JobSkipped,
    LogMessage,
    UnitRegistered,
)
from synapse_tui.engine.names import escape_text
from synapse_tui.ui.widgets.backend_banner import describe_health, failing_error
from synapse_tui.units import format_size

LEVEL_COLOURS = {"info": "foreground", "warning": "warning", "error": "error", "ok": "success"}


DONE_LINES = 5  # files done in one batch written a line each; more make one line
BULK_EVERY = 2.0  # seconds between two such lines: batches in between add to the next one


class EventLog(RichLog):
    """Appends one line per notable engine event; never interprets markup in names."""

    def __init__(self, base: str = "", *, frozen: bool = False, id: str | None = None) -> None:
        super().__init__(id=id, markup=False, highlight=False, wrap=True, max_lines=2000)
        self.base = base.rstrip("/") + "/" if base else ""
        self.frozen = frozen
        # The plain text of the last lines, as shown (bounded like the log: a batch of a
        # million files writes a million lines).
        self.lines_written: deque[str] = deque(maxlen=2000)
        self._failing = False  # the backend failed: its recovery deserves a line
        self._bulk: list[str] = []  # the first and last path of files done, not yet written
        self._bulk_count = 0
        self._bulk_timer: Timer | None = None

    def on_resize(self, event: Resize) -> None:
        # Wrap at the pane's width: RichLog renders at least `min_width` (78) cells, wider
        # than the pane at 80 columns, so the end of each wrapped line was cut off behind a
        # horizontal scrollbar. The last width seen stays while the pane is hidden (0 wide).
        width = self.scrollable_content_region.width
        if width > 0:
            self.min_width = width
        super().on_resize(event)

    def add(self, level: str, message: str) -> None:
        stamp = "--:--:--" if self.frozen else time.strftime("%H:%M:%S")
        # Only the stamp is dim: a Text's own style covers what is appended to it too, and
        # dimmed the message (the light theme's warnings read 2.8:1 on white).
        text = Text()
        text.append(f"{stamp} ", style="dim")
        body = Text(escape_text(message))
        colour = self.app.theme_variables.get(LEVEL_COLOURS.get(level, "foreground"))
        if colour and level != "info":
            from synapse_tui.ui.colours import rich_style

            body.stylize(rich_style(colour))
        text.append_text(body)
        self.lines_written.append(text.plain)
        self.write(text)

    def short(self, path: str) -> str:
        """A path relative to the dashboard's folder when it lies inside it."""
        if self.base and path.startswith(self.base):
            return path[len(self.base) :]
        return path

    def record_all(self, events: list[Event]) -> None:
        """A batch's lines; many files done in one batch (small files, hundreds a second)
        make one line, not one each: nobody reads them, and each line costs a render."""
        done = [e for e in events if isinstance(e, JobDone)]
        many = len(done) > DONE_LINES
        for event in events:
            if not (many and isinstance(event, JobDone)):
                self.record(event)
        if many:
            self._bulk_done(done)

    def _bulk_done(self, done: list[JobDone]) -> None:
        """Small files by the hundred a second: a line at once, then at most one every
        BULK_EVERY for all that finished meanwhile. A line per batch (8 a second) was a
        render, a scroll and a repaint of the log each, and 2,000 lines of them held
        ~100,000 objects that every full pass of the collector walked."""
        self._bulk = [self._bulk[0] if self._bulk else done[0].path, done[-1].path]
        self._bulk_count += len(done)
        if self._bulk_timer is None:
            self._write_bulk()

    def _write_bulk(self) -> None:
        self._bulk_timer = None
        if not self._bulk_count:
            return
        first, last = (self.short(p) for p in self._bulk)
        self.add("ok", f"done {self._bulk_count} files: {first} … {last}")
        self._bulk, self._bulk_count = [], 0
        if self.is_mounted:
            self._bulk_timer = self.set_timer(BULK_EVERY, self._write_bulk)

    def record(self, event: Event) -> None:
        """Write the line an event deserves (most progress events deserve none)."""
        if isinstance(event, JobQueued) and event.resumed:
            self.add("info", f"resumed {self.short(event.path)}")
        elif isinstance(event, JobDone):
            note = f" (resumed at {format_size(event.resumed_from)})" if event.resumed_from else ""
            self.add("ok", f"done {self.short(event.path)} md5 {event.md5}{note}")
        elif isinstance(event, JobSkipped):
            self.add("info", f"skipped {self.short(event.path)}: {event.reason}")
        elif isinstance(event, JobFailed):
            what = "paused (resumable)" if event.resumable else "failed"
            self.add("error", f"{what} {self.short(event.path)}: {event.error}")
        elif isinstance(event, LogMessage):
            message = event.message.replace(self.base, "") if self.base else event.message
            self.add(event.level, message)
        elif isinstance(event, UnitRegistered):
            files = ", ".join(self.short(p) for p in event.paths)
            self.add("ok", f"data unit {event.unit_id} in collection {event.collection}: {files}")
        elif isinstance(event, FatalStop):
            self.add("error", f"stopped: {event.error}")
        elif isinstance(event, BackendState):
            self._backend(event)
        elif isinstance(event, JobElsewhere):
            self.add("warning", f"{self.short(event.path)}: {event.reason}")

    def _backend(self, state: BackendState) -> None:
        """The header's "failing since" with the error whole (the header may cut it)."""
        error = failing_error(state)
        if error:
            self._failing = True
            self.add("error", f"backend {describe_health(state)[2:]}: {error}")
        elif self._failing:
            self._failing = False
            self.add("ok", "backend reachable again")
