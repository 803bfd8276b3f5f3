"""Live text repaints in place; only a change of width re-lays out the screen."""

from __future__ import annotations

from typing import Any, cast

from textual.widgets import Static

from synapse_tui.ui.widgets.live_text import set_live_text


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, bool]] = []

    def update(self, text: str, *, layout: bool = True) -> None:
        self.calls.append((text, layout))


def test_same_width_repaints_without_layout() -> None:
    widget = Recorder()
    target = cast(Static, cast(Any, widget))
    assert set_live_text(target, "", "now 12.0 MiB/s") is True
    assert set_live_text(target, "now 12.0 MiB/s", "now 13.5 MiB/s") is True
    assert set_live_text(target, "now 13.5 MiB/s", "now 13.5 MiB/s") is False
    assert set_live_text(target, "now 13.5 MiB/s", "now 113.5 MiB/s") is True
    assert set_live_text(target, "eta 3m", "eta 3分") is True  # a wide glyph: 2 cells
    assert widget.calls == [
        ("now 12.0 MiB/s", True),
        ("now 13.5 MiB/s", False),
        ("now 113.5 MiB/s", True),
        ("eta 3分", True),
    ]
