"""The file browser: a lazily loaded directory tree with sizes, marks and ledger flags."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual import work
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from synapse_tui.engine.names import absolute, display_name, display_path
from synapse_tui.ui.folder_sizes import MarkedSizes
from synapse_tui.ui.listing import Entry, Folder, list_folder, visible_rule
from synapse_tui.ui.widgets.browser_marks import BrowserMarks
from synapse_tui.units import format_size


class FileBrowser(BrowserMarks, MarkedSizes, Tree[Entry]):
    """A directory tree rooted at the dashboard's folder; `space` marks, `u` queues."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("space", "toggle_mark", "Mark", show=True),
        Binding("enter", "open", "Open", show=False),
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
        Binding("l,right", "expand", "Expand", show=False),
        Binding("h,left", "collapse", "Collapse", show=False),
        Binding("plus", "glob('mark')", "Mark glob", show=False),
        Binding("minus", "glob('unmark')", "Unmark glob", show=False),
        Binding("asterisk", "invert_marks", "Invert marks", show=False),
        Binding("ctrl+a", "mark_all", "Mark all", show=False),
        Binding("v", "range_mark", "Mark range", show=False),
        Binding("full_stop", "toggle_hidden", "Hidden", show=False),
        Binding("slash", "filter", "Filter", show=True),
        Binding("escape", "clear", "Clear filter/marks", show=False),
    ]

    show_hidden: reactive[bool] = reactive(False, init=False)
    """Whether dot files are listed."""
    name_filter: reactive[str] = reactive("", init=False)
    """Only files whose name contains this (or matches it as a glob) are listed."""

    def __init__(self, root: bytes, *, id: str | None = None) -> None:
        self.root_path = absolute(root)
        self.marked: set[bytes] = set()
        """Absolute paths of marked entries; they persist while moving between folders."""
        self.uploaded: set[bytes] = set()
        """Paths the ledger says were uploaded to this backend (flagged with ✓)."""
        self._listings: dict[bytes, list[Entry]] = {}
        self._indexes: dict[bytes, tuple[list[Entry], dict[bytes, Entry]]] = {}
        self._ruled: set[bytes] = set()  # folders too large to list whole: listed by rule
        self._left_out: dict[bytes, int] = {}  # of those, how many more than listed
        self._expanded: set[bytes] = {self.root_path}
        self._loading: dict[bytes, int] = {}  # folders being read: their latest listing
        self._listings_made = itertools.count()
        self._anchor: int | None = None  # `v`: the line where a range mark started
        self.folder_sizes: dict[bytes, tuple[int, bool]] = {}
        self._measuring: dict[bytes, int] = {}
        super().__init__(
            display_path(self.root_path), data=Entry(self.root_path, True, None), id=id
        )
        self.show_root = False
        self.guide_depth = 2
        self.auto_expand = False

    class Listed(Message):
        """A folder was read: its files may want their ✓ (the ledger is asked for them)."""

        def __init__(self, path: bytes) -> None:
            super().__init__()
            self.path = path

    # -- loading ----------------------------------------------------------------------------

    def on_mount(self) -> None:
        self.root.expand()
        self.load(self.root_path)

    def load(self, path: bytes) -> None:
        """List `path` off the UI thread, then fill its node. A folder of more than
        LIMIT entries lists the first LIMIT of those the browser shows now."""
        self._loading[path] = number = next(self._listings_made)
        self._list(path, visible_rule(self.show_hidden, self.name_filter), number)

    @work(thread=True, group="listing", exit_on_error=False)
    def _list(self, path: bytes, keep: Callable[[Entry], bool], number: int) -> None:
        folder = list_folder(path, keep)
        self.app.call_from_thread(self._loaded, path, folder, number)

    def _loaded(self, path: bytes, folder: Folder, number: int) -> None:
        if self._loading.get(path) != number:
            return  # a later listing of it is under way (another rule, f5): it stands
        del self._loading[path]
        self._listings[path] = folder.entries
        self._left_out.pop(path, None)
        self._ruled.discard(path)
        if folder.ruled:
            self._ruled.add(path)
            if folder.left_out:
                self._left_out[path] = folder.left_out
        self.post_message(self.Listed(path))
        node = self.node_for(path)
        if node is not None:
            self._fill(node)
            if node is self.root and self.cursor_line < 0:
                self.cursor_line = 0

    @property
    def listing(self) -> bool:
        """True while a folder is being read."""
        return bool(self._loading)

    def listed_files(self) -> list[bytes]:
        """The files of every folder read so far (what the ✓ marks can be asked for)."""
        return [e.path for entries in self._listings.values() for e in entries if not e.is_dir]

    def node_for(self, path: bytes) -> TreeNode[Entry] | None:
        if path == self.root_path:
            return self.root
        parent = self.node_for(os.path.dirname(path))
        if parent is None:
            return None
        for child in parent.children:
            if child.data is not None and child.data.path == path:
                return child
        return None

    def _fill(self, node: TreeNode[Entry]) -> None:
        assert node.data is not None
        self._drop_children(node)
        visible = visible_rule(self.show_hidden, self.name_filter)
        for entry in self._listings.get(node.data.path, []):
            if not visible(entry):
                continue
            child = node.add(display_name(entry.path), data=entry, allow_expand=entry.is_dir)
            if entry.is_dir and entry.path in self._expanded:
                if entry.path in self._listings:
                    self._fill(child)
                child.expand()
        left_out = self._left_out.get(node.data.path, 0)
        if left_out:
            node.add_leaf(f"… {left_out:,} more not shown: / filters")  # listing.LIMIT shown

    def _drop_children(self, node: TreeNode[Entry]) -> None:
        """`node.remove_children()` in one pass: Textual's looks each child up in its
        parent's list (`list.index`), quadratic in the children (8.8 s for 30,000)."""
        stack = list(node._children)
        while stack:
            child = stack.pop()
            stack.extend(child._children)
            self._tree_nodes.pop(child.id, None)
        node._children.clear()
        self._invalidate()

    def refill(self) -> None:
        """Rebuild the visible tree from the cached listings, keeping the cursor; a folder
        listed in part is listed again under the new rule (its cache lacks the rest)."""
        current = self.highlighted
        self._fill(self.root)
        self.call_after_refresh(self._restore_cursor, current)
        for path in list(self._ruled):
            if path == self.root_path or path in self._expanded:
                self.load(path)
            else:  # collapsed: listed under the new rule when expanded again
                self._loading.pop(path, None)  # a listing under the old rule is dropped
                del self._listings[path]
                self._ruled.discard(path)
                self._left_out.pop(path, None)

    def _restore_cursor(self, entry: Entry | None) -> None:
        path = entry.path if entry is not None else None
        while path and path != self.root_path:
            node = self.node_for(path)
            if node is not None:
                self.move_cursor(node)
                return
            path = os.path.dirname(path)
        self.cursor_line = 0

    def reload(self) -> None:
        """Re-read every expanded folder from disk."""
        self.folder_sizes.clear()
        for path in sorted(self._expanded):
            if path == self.root_path or path in self._listings:
                self.load(path)

    def watch_show_hidden(self) -> None:
        self.refill()

    def watch_name_filter(self) -> None:
        self.refill()
        self.border_subtitle = self._subtitle()

    # -- tree events ------------------------------------------------------------------------

    def on_tree_node_expanded(self, event: Tree.NodeExpanded[Entry]) -> None:
        event.stop()
        entry = event.node.data
        if entry is None:
            return
        self._expanded.add(entry.path)
        if entry.path not in self._listings:
            self.load(entry.path)

    def on_tree_node_collapsed(self, event: Tree.NodeCollapsed[Entry]) -> None:
        event.stop()
        if event.node.data is not None:
            self._expanded.discard(event.node.data.path)

    # -- what is highlighted and marked ------------------------------------------------------

    @property
    def highlighted(self) -> Entry | None:
        node = self.cursor_node
        return node.data if node is not None else None

    def folder_entries(self) -> list[Entry]:
        """The visible entries of the folder holding the cursor."""
        node = self.cursor_node
        parent = node.parent if node is not None and node.parent is not None else self.root
        return [c.data for c in parent.children if c.data is not None]

    def targets(self) -> list[bytes]:
        """What `u` queues: the marks, else the highlighted entry."""
        if self.marked:
            return sorted(self.marked)
        entry = self.highlighted
        return [entry.path] if entry is not None else []

    def extensions(self) -> set[str]:
        """Lower-case extensions (no dot) of the marked and listed files: hints for a spec map."""
        paths = set(self.marked)
        for entries in self._listings.values():
            paths.update(e.path for e in entries if not e.is_dir)
        out = {os.fsdecode(os.path.splitext(p)[1][1:]).lower() for p in paths}
        out.discard("")
        return out

    def clear_marks(self) -> None:
        self.marked.clear()
        self._marks_changed()

    def set_marks(self, paths: set[bytes], mark: bool = True) -> None:
        if mark:
            self.marked |= paths
        else:
            self.marked -= paths
        self._marks_changed()

    def _marks_changed(self) -> None:
        self._invalidate()
        self.refresh()
        self._measure_marked()
        self.border_subtitle = self._subtitle()

    def _show_subtitle(self) -> None:
        self.border_subtitle = self._subtitle()

    def _subtitle(self) -> str:
        parts = []
        if self.marked:
            size, final = self.marked_size()
            more = "" if final else "+ (counting…)"
            parts.append(f"{len(self.marked)} marked, {format_size(size)}{more}")
        if self.name_filter:
            parts.append(f"filter: {self.name_filter}")
        if self.show_hidden:
            parts.append("hidden shown")
        return " · ".join(parts)

    def _size_of(self, path: bytes) -> int | None:
        entry = self._entry(path)
        return entry.size if entry is not None else None

    # -- actions ----------------------------------------------------------------------------

    def action_open(self) -> None:
        node = self.cursor_node
        if node is not None and node.allow_expand:
            node.toggle()

    def action_expand(self) -> None:
        node = self.cursor_node
        if node is None:
            return
        if node.allow_expand and not node.is_expanded:
            node.expand()
        elif node.allow_expand and node.children:
            self.move_cursor(node.children[0])

    def action_collapse(self) -> None:
        node = self.cursor_node
        if node is None:
            return
        if node.allow_expand and node.is_expanded:
            node.collapse()
        elif node.parent is not None and node.parent is not self.root:
            self.move_cursor(node.parent)

    def action_toggle_hidden(self) -> None:
        self.show_hidden = not self.show_hidden
        self.border_subtitle = self._subtitle()

    def action_filter(self) -> None:
        from synapse_tui.ui.screens.prompt import PromptScreen

        def done(text: str | None) -> None:
            if text is not None:
                self.name_filter = text

        self.app.push_screen(
            PromptScreen(
                "Filter by name (empty clears)", "part of a name or a glob", self.name_filter
            ),
            done,
        )

    def action_clear(self) -> None:
        if self.name_filter:
            self.name_filter = ""
        elif self.marked:
            self.clear_marks()

    # -- rendering --------------------------------------------------------------------------

    def render_label(self, node: TreeNode[Entry], base_style: Style, style: Style) -> Text:
        entry = node.data
        if entry is None:  # the line of a folder's entries not listed
            label = Text("  " + str(node.label))
            if self.is_mounted:
                label.stylize(self.get_component_rich_style("file-browser--size", partial=True))
                room = self.scrollable_content_region.width - self._depth(node) - 1
                if room > 4:  # within the pane, as a file's name is: no sideways scrolling
                    label.truncate(room, overflow="ellipsis")
            label.stylize(style)
            return label
        marked = entry.path in self.marked
        mark = Text("● " if marked else "  ", style="bold")
        if marked and self.is_mounted:
            mark.stylize(self.get_component_rich_style("file-browser--mark", partial=True))
        if entry.is_dir:
            icon = "▾ " if node.is_expanded else "▸ "
            name = Text(icon + display_name(entry.path) + "/")
        else:
            name = Text("  " + display_name(entry.path))
        if self.is_mounted:
            part = "file-browser--folder" if entry.is_dir else "file-browser--file"
            name.stylize_before(self.get_component_rich_style(part, partial=True))
            if marked:
                name.stylize(self.get_component_rich_style("file-browser--mark", partial=True))
        flag = " ✓" if entry.path in self.uploaded else "  "
        size = format_size(entry.size) if entry.size is not None else ""
        right = Text(f"{size:>10}{flag}")
        if self.is_mounted:
            right.stylize(self.get_component_rich_style("file-browser--size", partial=True))
        width = self.scrollable_content_region.width - self._depth(node) - 1
        room = width - mark.cell_len - right.cell_len
        if room > 4:
            name.truncate(room, overflow="ellipsis", pad=True)
        label = Text.assemble(mark, name, right)
        label.stylize(style)
        return label

    def _depth(self, node: TreeNode[Entry]) -> int:
        """The cells a node's guides take at its depth."""
        depth = 0
        parent = node.parent
        while parent is not None and parent is not self.root:
            depth += 1
            parent = parent.parent
        return depth * self.guide_depth

    COMPONENT_CLASSES: ClassVar[set[str]] = Tree.COMPONENT_CLASSES | {
        "file-browser--mark",
        "file-browser--folder",
        "file-browser--file",
        "file-browser--size",
    }
