"""The size of marked folders, walked off the UI thread: bounded, cancellable, in steps."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from textual import work
from textual.widget import Widget
from textual.worker import get_current_worker

from synapse_tui.ui.listing import Entry

# At most this many entries are visited per folder: a size past them is a lower bound.
MAX_ENTRIES = 1_000_000
# A running total is reported at most this often.
REPORT_EVERY = 0.2
SIZE_CACHE = 4096  # folder sizes kept between marks


def folder_size(
    folder: bytes,
    report: Callable[[int, bool], None],
    cancelled: Callable[[], bool],
    max_entries: int = MAX_ENTRIES,
) -> tuple[int, bool] | None:
    """Bytes of the regular files under `folder` (links to files count, links to folders
    are not walked: no loops). `report(total, done)` gets the running total now and then;
    returns (total, complete), or None when cancelled. `complete` is False when the walk
    stopped at `max_entries`."""
    total = 0
    seen = 0
    last = time.monotonic()
    stack = [folder]
    while stack:
        if cancelled():
            return None
        path = stack.pop()
        try:
            with os.scandir(path) as it:
                for entry in it:
                    seen += 1
                    if seen > max_entries:
                        return total, False
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
                            continue
                        st = entry.stat()  # a link to a file counts as the file, as uploaded
                    except OSError:
                        continue
                    if stat.S_ISREG(st.st_mode):
                        total += st.st_size
        except OSError:
            continue  # unreadable: the upload reports it; the size leaves it out
        now = time.monotonic()
        if now - last >= REPORT_EVERY:
            last = now
            report(total, False)
    return total, True


# A plain mixin at run time: a Widget base here would reset the browser's `can_focus`
# (Textual sets it on every Widget subclass); mypy sees the Widget it is mixed into.
_Base = Widget if TYPE_CHECKING else object


class MarkedSizes(_Base):  # type: ignore[misc,valid-type]
    """The file browser's part that sizes its marks, folders included, as they are walked.

    Folder sizes: path -> (bytes, complete), kept until a reload (at most SIZE_CACHE);
    only marked folders are walked, one walk at a time (a new mark cancels the old walk).
    """

    marked: set[bytes]
    folder_sizes: dict[bytes, tuple[int, bool]]
    _measuring: dict[bytes, int]  # running totals of the walk under way
    _listings: dict[bytes, list[Entry]]

    def _show_subtitle(self) -> None:
        raise NotImplementedError

    def _size_of(self, path: bytes) -> int | None:
        raise NotImplementedError

    _indexes: dict[bytes, tuple[list[Entry], dict[bytes, Entry]]]  # by folder: its entries

    def _entry(self, path: bytes) -> Entry | None:
        """`path`'s entry in its folder's listing, looked up by an index of that listing
        (a pass over the folder a mark made each mark change cost marks x folder: ~8 s of
        the UI thread with 10,000 marks in a folder of 10,000)."""
        folder = os.path.dirname(path)
        entries = self._listings.get(folder)
        if entries is None:
            self._indexes.pop(folder, None)
            return None
        index = self._indexes.get(folder)
        if index is None or index[0] is not entries:  # listed again since: a new index
            index = (entries, {e.path: e for e in entries})
            self._indexes[folder] = index
        return index[1].get(path)

    def _is_folder(self, path: bytes) -> bool:
        entry = self._entry(path)
        return entry is not None and entry.is_dir

    def _measure_marked(self) -> None:
        """Walk the marked folders not measured yet (the walk of older marks is cancelled)."""
        if len(self.folder_sizes) > SIZE_CACHE:
            self.folder_sizes.clear()
        todo = sorted(p for p in self.marked if p not in self.folder_sizes and self._is_folder(p))
        self._measuring = {}
        if todo:
            self._measure(todo)
        else:
            self.workers.cancel_group(self, "sizes")

    @work(thread=True, group="sizes", exclusive=True, exit_on_error=False)
    def _measure(self, folders: list[bytes]) -> None:
        worker = get_current_worker()
        for folder in folders:

            def report(total: int, _done: bool, folder: bytes = folder) -> None:
                self.app.call_from_thread(self._measured, folder, total, None)

            result = folder_size(folder, report, lambda: worker.is_cancelled)
            if result is None:
                return
            self.app.call_from_thread(self._measured, folder, *result)

    def _measured(self, folder: bytes, total: int, complete: bool | None) -> None:
        if complete is None:
            self._measuring[folder] = total
        else:
            self._measuring.pop(folder, None)
            self.folder_sizes[folder] = (total, complete)
        self._show_subtitle()

    def marked_size(self) -> tuple[int, bool]:
        """(bytes, final) of the marks: files by their listing, folders as walked so far."""
        total = 0
        final = True
        for path in self.marked:
            known = self.folder_sizes.get(path)
            if known is not None:
                total += known[0]
                final = final and known[1]
            elif path in self._measuring:
                total += self._measuring[path]
                final = False
            elif self._is_folder(path):
                final = False
            else:
                total += self._size_of(path) or 0
        return total, final
