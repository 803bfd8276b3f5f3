"""The batch's overall progress: one bar with a visible track, bytes and files."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Label

from synapse_tui.ui.widgets.live_text import set_live_text
from synapse_tui.units import format_size


class TrackBar(Widget):
    """`█████░░░░░ 42%`: the filled part in the bar colour, the rest a visible track
    (Textual's ProgressBar draws the empty part in the panel's own colour: invisible)."""

    DEFAULT_CSS = """
    TrackBar {
        width: 1fr;
        height: 1;
    }
    """
    COMPONENT_CLASSES = {"track-bar--bar", "track-bar--track"}  # noqa: RUF012

    fraction: reactive[float] = reactive(0.0)
    """Done, from 0 to 1."""

    def render(self) -> Text:
        label = f" {self.fraction * 100:3.0f}%"
        room = max(0, self.size.width - len(label))
        filled = round(self.fraction * room)
        text = Text(no_wrap=True, overflow="crop")
        text.append("█" * filled, style=self.get_component_rich_style("track-bar--bar"))
        text.append("░" * (room - filled), style=self.get_component_rich_style("track-bar--track"))
        text.append(label)
        return text


class OverallProgress(Vertical):
    """A progress bar over every byte queued this session; byte and file counts below it
    (beside it, they pushed past the pane's edge as the numbers grew)."""

    bytes_done: reactive[int] = reactive(0, init=False)
    """Bytes uploaded (done jobs count whole)."""
    bytes_total: reactive[int] = reactive(0, init=False)
    """Bytes of every job not cancelled."""
    files_done: reactive[int] = reactive(0, init=False)
    """Jobs done."""
    files_total: reactive[int] = reactive(0, init=False)
    """Jobs queued this session."""

    _shown = ""

    def compose(self) -> ComposeResult:
        yield TrackBar(id="overall-bar")
        yield Label("", id="overall-text")

    files_left: reactive[int] = reactive(0, init=False)
    """Jobs still to finish (queued, running or paused)."""

    def update_totals(
        self, done: int, total: int, files_done: int, files_total: int, left: int = 0
    ) -> None:
        self.bytes_done, self.bytes_total = done, total
        self.files_done, self.files_total, self.files_left = files_done, files_total, left
        self._paint()

    def on_mount(self) -> None:
        self._paint()

    def _paint(self) -> None:
        bar = self.query_one(TrackBar)
        bar.fraction = min(1.0, self.bytes_done / self.bytes_total) if self.bytes_total else 0.0
        # Padded so the text keeps its width while the numbers grow: a label of a new width
        # re-lays out the whole screen.
        total = format_size(self.bytes_total)
        files = str(self.files_total)
        left = self.files_left
        text = (
            f"{format_size(self.bytes_done):>{len(total)}} / {total}"
            f" · {self.files_done:>{len(files)}}/{files} files · {left:>{len(files)}} left"
        )
        if set_live_text(self.query_one("#overall-text", Label), self._shown, text):
            self._shown = text
