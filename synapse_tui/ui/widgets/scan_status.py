"""The pre-scan's running totals while a queued folder is walked and hashed."""

from __future__ import annotations

from textual.widgets import Static

from synapse_tui.engine.events import ScanProgress
from synapse_tui.units import format_size


class ScanStatus(Static):
    """Shown while a scan runs (and its summary after): files, bytes, duplicates, uploaded."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self.last: ScanProgress | None = None

    def show(self, event: ScanProgress) -> None:
        self.last = event
        verb = "scanned" if event.done else "scanning…"
        text = (
            f"{verb} {event.files} files, {format_size(event.bytes)}"
            f" · {event.duplicates} duplicates · {event.already_uploaded} already uploaded"
        )
        if event.skipped:
            text += f" · {event.skipped} skipped"
        if event.failed:
            text += f" · {event.failed} failed"
        self.set_class(not event.done, "-running")
        self.add_class("-shown")
        self.update(text)
