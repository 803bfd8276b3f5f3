"""A folder of more entries than the browser lists (a million images in one folder): the
first LIMIT by name are listed, a line says how many more, the filter finds any of them,
and ctrl+a marks the folder itself (so `u` queues all of it, not the part listed)."""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from synapse_tui.ui.listing import Entry, list_folder, visible_rule
from synapse_tui.ui.widgets.file_browser import FileBrowser
from tests.ui.conftest import wait_for
from tests.ui.large_folder import big_root, fill, opened
from tests.ui.test_browser import answer


def test_a_folder_up_to_the_limit_is_listed_whole(tmp_path: Path) -> None:
    fill(tmp_path, 7)
    (tmp_path / "sub").mkdir()
    folder = list_folder(os.fsencode(tmp_path), limit=8)
    assert folder.left_out == 0 and not folder.ruled
    assert [e.name for e in folder.entries][:2] == [b"sub", b"img_000000.jpg"]
    assert len(folder.entries) == 8


def test_a_larger_folder_lists_the_first_by_name_and_counts_the_rest(tmp_path: Path) -> None:
    fill(tmp_path, 50)
    (tmp_path / "zz_sub").mkdir()
    (tmp_path / ".dot").write_bytes(b"")
    folder = list_folder(os.fsencode(tmp_path), visible_rule(False, ""), limit=10)
    names = [e.name for e in folder.entries]
    # Folders first, then by name; the hidden file neither listed nor counted.
    assert names == [b"zz_sub"] + [b"img_%06d.jpg" % i for i in range(9)]
    assert folder.left_out == 41 and folder.ruled
    assert [e.size for e in folder.entries[:4]] == [None, 0, 1, 2]  # only these stat'ed
    only = list_folder(os.fsencode(tmp_path), visible_rule(False, "*_00004*.jpg"), limit=10)
    # Kept: the folder (folders stay, as shown) and 0040-0049; the first 10 listed.
    assert [e.name for e in only.entries] == [b"zz_sub"] + [
        b"img_%06d.jpg" % i for i in range(40, 49)
    ]
    assert only.left_out == 1 and only.ruled


def test_listing_a_large_folder_holds_the_limit_not_the_folder(tmp_path: Path) -> None:
    fill(tmp_path / "small", 2_000)
    fill(tmp_path / "large", 8_000)

    def peak(folder: Path) -> int:
        tracemalloc.start()
        try:
            listed = list_folder(os.fsencode(folder), limit=500)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert len(listed.entries) == 500
        return peak

    small, large = peak(tmp_path / "small"), peak(tmp_path / "large")
    assert large < 1.5 * small, (small, large)  # listed whole, 4x the names took ~4x


async def test_the_dashboard_lists_part_filters_all_and_marks_the_folder(
    app_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = big_root(tmp_path, monkeypatch)
    (root / "small.txt").write_bytes(b"hi")
    async with opened(app_factory, root, entries=2) as pilot:
        browser: FileBrowser = pilot.app.dashboard.browser
        many = browser.root.children[0]
        assert [c.data.name for c in many.children[:2] if c.data] == [
            b"img_000000.jpg",
            b"img_000001.jpg",
        ]
        last = many.children[-1]
        assert last.data is None and "280 more" in str(last.label)
        await pilot.press("l", "ctrl+a")  # in many/: the folder itself is marked
        assert browser.marked == {os.fsencode(root / "many")}
        assert browser.targets() == [os.fsencode(root / "many")]
        await pilot.press("ctrl+a")
        assert browser.marked == set()
        await pilot.press("slash")
        await answer(pilot, "*0029?.jpg")  # past the part listed: the folder is read again

        def shown() -> list[bytes]:
            return [c.data.name for c in browser.root.children[0].children if c.data]

        await wait_for(pilot, lambda: shown() == [b"img_%06d.jpg" % i for i in range(290, 300)])
        assert not any(c.data is None for c in browser.root.children[0].children)
        await pilot.press("escape")  # the filter cleared: the first 20 again, and the line
        await wait_for(pilot, lambda: shown()[:1] == [b"img_000000.jpg"])
        await wait_for(pilot, lambda: browser.root.children[0].children[-1].data is None)


def test_removing_many_children_is_linear(tmp_path: Path) -> None:
    """FileBrowser._drop_children leaves the tree as Textual's remove_children does."""
    tree = FileBrowser(os.fsencode(tmp_path))
    for i in range(3):
        node = tree.root.add(f"d{i}", data=Entry(b"/x/d%d" % i, True, None))
        node.add_leaf("leaf", data=Entry(b"/x/d%d/leaf" % i, False, 1))
    assert len(tree._tree_nodes) == 7
    tree._drop_children(tree.root)
    assert list(tree.root.children) == [] and list(tree._tree_nodes) == [tree.root.id]
