"""What the dashboard borrows from Textual's private parts still holds (pyproject.toml bounds
Textual above for it): fails first when a Textual release changes under the dashboard."""

from __future__ import annotations

import inspect

from textual.widgets import Tree

from synapse_tui.ui.widgets import file_browser


def test_the_file_browser_still_finds_trees_private_invalidate() -> None:
    """FileBrowser._marks_changed calls Tree._invalidate (clears the line cache so a mark
    is drawn at once); without it marking a file would raise AttributeError."""
    assert "self._invalidate()" in inspect.getsource(file_browser.FileBrowser)
    invalidate = getattr(Tree, "_invalidate", None)
    assert callable(invalidate)
    assert list(inspect.signature(invalidate).parameters) == ["self"]
