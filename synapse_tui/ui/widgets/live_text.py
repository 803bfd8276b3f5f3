"""Repainting a line of live text without re-laying out the whole screen."""

from __future__ import annotations

from rich.cells import cell_len
from textual.widgets import Static


def set_live_text(widget: Static, shown: str, text: str) -> bool:
    """Show `text` in `widget` if it differs from `shown`; True when it was updated.

    `Static.update` re-lays out the screen by default, which re-renders every pane:
    with uploads running that was most of the UI thread's time (py-spy, bench 6a).
    Text of the same width in cells takes the same room (`width: auto`, or wrapped
    at the same points), so only a change of width asks for a layout.
    """
    if text == shown:
        return False
    widget.update(text, layout=cell_len(text) != cell_len(shown))
    return True
