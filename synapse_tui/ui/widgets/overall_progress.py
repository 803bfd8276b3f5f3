"""The batch's overall progress: one bar, bytes and files."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.reactive import reactive
from textual.widgets import Label, ProgressBar

from synapse_tui.ui.widgets.live_text import set_live_text
from synapse_tui.units import format_size


class OverallProgress(Horizontal):
    """A progress bar over every byte queued this session, with byte and file counts."""

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
        yield ProgressBar(total=1, show_eta=False, id="overall-bar")  # never the pulsing idle bar
        yield Label("", id="overall-text")

    def update_totals(self, done: int, total: int, files_done: int, files_total: int) -> None:
        self.bytes_done, self.bytes_total = done, total
        self.files_done, self.files_total = files_done, files_total
        self._paint()

    def on_mount(self) -> None:
        self._paint()

    def _paint(self) -> None:
        bar = self.query_one(ProgressBar)
        bar.update(total=max(1, self.bytes_total), progress=self.bytes_done)
        # Padded so the text keeps its width while the numbers grow: a label of a new width
        # re-lays out the whole screen.
        total = format_size(self.bytes_total)
        files = str(self.files_total)
        text = (
            f"{format_size(self.bytes_done):>{len(total)}} / {total}"
            f" · {self.files_done:>{len(files)}}/{files} files"
        )
        if set_live_text(self.query_one("#overall-text", Label), self._shown, text):
            self._shown = text
