"""The queue pane's keys: move, page, first and last, follow, filter (JobQueue mixes it in)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import events

from synapse_tui.ui.widgets.queue_model import FILTERS

if TYPE_CHECKING:
    from textual.scroll_view import ScrollView

    from synapse_tui.ui.widgets.queue_model import QueueModel

    _Base = ScrollView
else:
    _Base = object


class QueueCursor(_Base):
    """Every manual move turns following off; `G` turns it on again."""

    if TYPE_CHECKING:
        cursor_row: int
        following: bool
        model: QueueModel
        _cursor_id: int | None

        def set_filter(self, view_filter: str | None) -> None: ...
        def _resize_virtual(self, at_once: bool = False) -> bool: ...

    def action_filter(self) -> None:
        """`/`: the next state filter (every job, active, queued, paused, failed, done)."""
        index = FILTERS.index(self.model.filter) if self.model.filter in FILTERS else 0
        self.set_filter(FILTERS[(index + 1) % len(FILTERS)])

    def action_clear_filter(self) -> None:
        self.set_filter(None)

    def validate_cursor_row(self, value: int) -> int:
        return max(0, min(value, self.model.total - 1))

    def watch_cursor_row(self, old: int, new: int) -> None:
        row = self.model.row_at(new)
        self._cursor_id = row.job_id if row is not None else None
        resized = self._resize_virtual(at_once=True)  # scrolling to the cursor needs its rows
        self.refresh_line(old + 1)
        self.refresh_line(new + 1)
        visible = self.scrollable_content_region.height - 1  # rows under the header
        top = round(self.scroll_y)
        target: int | None = None
        if new < top:
            target = new
        elif visible > 0 and new >= top + visible:
            target = new - visible + 1
        if target is None:
            return
        if resized:  # the new rows count once laid out: a scroll now stops at the old end
            self.call_after_refresh(self.scroll_to, y=target, animate=False)
        else:
            self.scroll_to(y=target, animate=False)

    def action_cursor_down(self) -> None:
        self.following = False
        self.cursor_row += 1

    def action_cursor_up(self) -> None:
        self.following = False
        self.cursor_row -= 1

    def action_page_down(self) -> None:
        self.following = False
        self.cursor_row += max(1, self.scrollable_content_region.height - 2)

    def action_page_up(self) -> None:
        self.following = False
        self.cursor_row -= max(1, self.scrollable_content_region.height - 2)

    def action_first(self) -> None:
        self.following = False
        self.cursor_row = 0

    def action_last(self) -> None:
        """`G`: the last row, and follow the uploads again."""
        self.cursor_row = self.model.total - 1
        self.following = True

    def action_follow(self) -> None:
        self.following = True

    def on_mouse_scroll_down(self, event: events.MouseScrollDown) -> None:
        self.following = False

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        self.following = False
