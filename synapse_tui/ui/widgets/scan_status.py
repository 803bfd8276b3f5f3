"""The pre-scan's running totals while a queued folder is walked and hashed."""

from __future__ import annotations

from textual.widgets import Static

from synapse_tui.engine.events import ScanProgress
from synapse_tui.ui.widgets.live_text import set_live_text
from synapse_tui.units import format_size


def plural(n: int, noun: str) -> str:
    """`1 file`, `2 files`."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


class ScanStatus(Static):
    """Shown while a scan runs (and its summary after): files, bytes, duplicates, uploaded."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self.last: ScanProgress | None = None
        self._shown = ""

    def show(self, event: ScanProgress) -> None:
        self.last = event
        verb = "scanned" if event.done else "scanning…"
        text = (
            f"{verb} {plural(event.files, 'file')}, {format_size(event.bytes)}"
            f" · {plural(event.duplicates, 'duplicate')}"
            f" · {event.already_uploaded} already uploaded"
        )
        if event.skipped:
            text += f" · {event.skipped} skipped"
        if event.failed:
            text += f" · {event.failed} failed"
        self.set_class(not event.done, "-running")
        self.add_class("-shown")
        # Several times a second while a big folder is scanned: a layout (`update`'s
        # default) only when the line's size changes, as for the other live lines.
        if set_live_text(self, self._shown, text):
            self._shown = text
