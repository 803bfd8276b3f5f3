"""The tab strip shown below 110 columns, where one pane is visible at a time."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

PANES = (("browser", "Files"), ("queue", "Queue"), ("progress", "Progress"), ("log", "Log"))


class PaneTabs(Static):
    """`1 Files │ 2 Queue │ 3 Progress │ 4 Log`, the current one highlighted."""

    current: reactive[str] = reactive("browser", init=False)
    """The id of the visible pane."""

    def on_mount(self) -> None:
        self._paint()

    def watch_current(self) -> None:
        self._paint()

    def _paint(self) -> None:
        text = Text()
        for n, (pane, label) in enumerate(PANES, 1):
            if n > 1:
                text.append(" │ ", style="dim")
            style = "reverse bold" if pane == self.current else ""
            text.append(f" {n} {label} ", style=style)
        text.append("   tab: next pane", style="dim")
        self.update(text)
