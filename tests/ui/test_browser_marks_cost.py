"""The size of the marks is found by path, not by a pass over the marked file's folder:
with a folder of 10,000 entries (the browser's listing limit) all marked, each mark change
took ~8 s of the UI thread (10,000 marks x 10,000 entries, twice)."""

from __future__ import annotations

from collections.abc import Iterator

from synapse_tui.ui.listing import Entry
from synapse_tui.ui.widgets.file_browser import FileBrowser


class _Passes(list[Entry]):
    """A folder's listing that counts the passes over it."""

    passes = 0

    def __iter__(self) -> Iterator[Entry]:
        type(self).passes += 1
        return super().__iter__()


def test_the_marks_size_takes_no_pass_over_their_folder_per_mark() -> None:
    browser = FileBrowser(b"/x")
    entries = [Entry(b"/x/f%04d" % i, False, i) for i in range(200)]
    entries.append(Entry(b"/x/sub", True, None))
    browser._listings[b"/x"] = _Passes(entries)
    browser.marked = {e.path for e in entries}
    _Passes.passes = 0
    size, final = browser.marked_size()
    assert (size, final) == (sum(range(200)), False)  # sub/ not walked yet
    assert _Passes.passes <= 2, _Passes.passes  # one pass, not one a mark
