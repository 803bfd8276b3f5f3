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


def test_the_file_browser_still_finds_the_tree_nodes_it_drops() -> None:
    """FileBrowser._drop_children clears a node's children in one pass: it needs
    TreeNode._children (a list) and Tree._tree_nodes (a dict by node id), and Textual's own
    removal still doing what it replaces (so that the two agree)."""
    from textual.widgets.tree import TreeNode

    source = inspect.getsource(file_browser.FileBrowser._drop_children)
    assert "node._children" in source and "self._tree_nodes" in source
    tree: Tree[None] = Tree("root")
    node = tree.root.add("a")
    node.add_leaf("b")
    assert isinstance(node._children, list) and node._children[0].parent is node
    assert isinstance(tree._tree_nodes, dict) and tree._tree_nodes[node.id] is node
    assert "_tree_nodes" in inspect.getsource(TreeNode._remove)
