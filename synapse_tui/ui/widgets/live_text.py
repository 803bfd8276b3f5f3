"""Repainting a line of live text without re-laying out the whole screen."""

from __future__ import annotations

from textual.widget import Widget
from textual.widgets import Static


def set_live_text(widget: Static, shown: str, text: str) -> bool:
    """Show `text` in `widget` if it differs from `shown`; True when it was updated.

    `Static.update` re-lays out the screen by default, and a layout repaints every pane:
    with uploads running that was most of the UI thread's time (py-spy, bench 6a). Only a
    change of the widget's own size needs one: the new text is measured the way the layout
    would measure it (its width where the width is `auto`, its wrapped height where the
    height is `auto`) and compared with the size on screen.
    """
    if text == shown:
        return False
    if not widget.is_mounted or not widget.size:
        widget.update(text)  # not laid out yet: nothing to compare with
        return True
    widget.update(text, layout=False)
    widget.clear_cached_dimensions()
    if _resized(widget):
        widget.refresh(layout=True)
    return True


def _resized(widget: Static) -> bool:
    styles = widget.styles
    content = widget.content_size
    parent = widget.parent
    container = parent.content_size if isinstance(parent, Widget) else widget.app.size
    viewport = widget.app.size
    width = content.width
    if styles.width is not None and styles.width.is_auto:
        width = widget.get_content_width(container, viewport)
        if width != content.width:
            return True
    if styles.height is not None and styles.height.is_auto:
        return widget.get_content_height(container, viewport, width) != content.height
    return False
