"""One line under the header: the data collection the next `u` registers uploads in."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from synapse_tui.engine.collections import CollectionPlan
from synapse_tui.ui.collection_choice import describe_plan


class CollectionTarget(Static):
    """Hidden for plain uploads; `→ collection images (image, meta) · spec image` otherwise."""

    plan: reactive[CollectionPlan | None] = reactive(None, init=False, always_update=True)
    """The plan the next queued paths get (None: plain uploads)."""

    def on_mount(self) -> None:
        self._paint()

    def watch_plan(self) -> None:
        self._paint()

    def _paint(self) -> None:
        self.set_class(self.plan is not None, "-shown")
        self.update(Text(describe_plan(self.plan), no_wrap=True, overflow="ellipsis"))
