"""The file browser's marking keys: one entry, a range, by glob, inverted, all of a folder."""

from __future__ import annotations

import fnmatch
from typing import TYPE_CHECKING

from synapse_tui.engine.names import display_name
from synapse_tui.ui.listing import Entry

if TYPE_CHECKING:
    from textual.widgets import Tree

    _Base = Tree[Entry]
else:  # a plain mixin at run time, as folder_sizes.MarkedSizes (Tree sets can_focus)
    _Base = object


class BrowserMarks(_Base):
    """Marks: absolute paths in `marked`, kept while moving between folders."""

    marked: set[bytes]
    root_path: bytes
    _ruled: set[bytes]  # folders too large to list whole (file_browser)
    _left_out: dict[bytes, int]  # of those, how many more than listed
    name_filter: str
    _anchor: int | None  # `v`: the line where a range mark started

    @property
    def highlighted(self) -> Entry | None:
        raise NotImplementedError

    def folder_entries(self) -> list[Entry]:
        raise NotImplementedError

    def set_marks(self, paths: set[bytes], mark: bool = True) -> None:
        raise NotImplementedError

    def _marks_changed(self) -> None:
        raise NotImplementedError

    def mark_glob(self, pattern: str, mark: bool = True) -> int:
        """Mark (or unmark) the entries of the current folder matching `pattern`."""
        hits = {
            e.path
            for e in self.folder_entries()
            if fnmatch.fnmatch(display_name(e.path).lower(), pattern.lower())
        }
        self.set_marks(hits, mark)
        return len(hits)

    def action_toggle_mark(self) -> None:
        entry = self.highlighted
        if entry is None:
            return
        if entry.path in self.marked:
            self.marked.discard(entry.path)
        else:
            self.marked.add(entry.path)
        self._marks_changed()
        self.action_cursor_down()

    def action_range_mark(self) -> None:
        """First `v` drops an anchor; the second marks every line between it and the cursor."""
        if self._anchor is None:
            self._anchor = self.cursor_line
            self.border_subtitle = "range: move, then v again"
            return
        low, high = sorted((self._anchor, self.cursor_line))
        self._anchor = None
        paths = set()
        for line in range(low, high + 1):
            node = self.get_node_at_line(line)
            if node is not None and node.data is not None:
                paths.add(node.data.path)
        self.set_marks(paths)

    def action_invert_marks(self) -> None:
        paths = {e.path for e in self.folder_entries()}
        self.marked ^= paths
        self._marks_changed()

    def _cursor_folder(self) -> bytes:
        """The folder whose entries the cursor is among."""
        node = self.cursor_node
        parent = node.parent if node is not None and node.parent is not None else self.root
        return parent.data.path if parent.data is not None else self.root_path

    def action_mark_all(self) -> None:
        folder = self._cursor_folder()
        if folder in self._left_out:  # more than listed: all of it is the folder itself
            if self.name_filter:  # the folder would queue the files the filter leaves out
                self.notify(
                    f"{display_name(folder)}: more match the filter than are listed;"
                    " narrow it, or clear it to mark the folder",
                    severity="warning",
                )
                return
            mark = folder not in self.marked
            self.set_marks({folder}, mark)
            if mark:
                self.notify(f"marked the folder {display_name(folder)}: all of its entries")
            return
        paths = {e.path for e in self.folder_entries()}
        self.set_marks(paths, not paths <= self.marked)

    def action_glob(self, mode: str) -> None:
        from synapse_tui.ui.screens.prompt import PromptScreen

        def done(pattern: str | None) -> None:
            if not pattern:
                return
            folder = self._cursor_folder()
            n = self.mark_glob(pattern, mode == "mark")
            more = self._left_out.get(folder)
            if more:  # listed in part: the glob saw only what is listed
                self.notify(
                    f"{mode}ed {n:,} of the entries listed matching {pattern};"
                    f" {display_name(folder)} holds {more:,} more not listed:"
                    " / filters the folder to list them",
                    severity="warning",
                )
            else:
                self.notify(f"{mode}ed {n} entr{'y' if n == 1 else 'ies'} matching {pattern}")

        title = "Mark by glob" if mode == "mark" else "Unmark by glob"
        self.app.push_screen(PromptScreen(title, "e.g. *.tif", value="*"), done)
