"""Folder listings for the file browser, read off the UI thread."""

from __future__ import annotations

import fnmatch
import heapq
import itertools
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from synapse_tui.engine.names import display_name


@dataclass(frozen=True, slots=True)
class Entry:
    """One directory entry; `size` is None for folders and unreadable entries."""

    path: bytes
    is_dir: bool
    size: int | None

    @property
    def name(self) -> bytes:
        return os.path.basename(self.path)

    @property
    def hidden(self) -> bool:
        return self.name.startswith(b".")


LIMIT = 10_000
"""Entries listed of one folder at most: a folder of a million images shows its first
10,000 by name, a line says how many more it holds, and `/` (the filter) finds the rest."""


@dataclass(frozen=True, slots=True)
class Folder:
    """A folder as listed: its entries (folders first, then by name, case folded); `ruled`
    when it holds more than the limit, so they are those the rule kept (another rule needs
    another listing), and `left_out` of those not listed."""

    entries: list[Entry]
    ruled: bool = False
    left_out: int = 0


def list_folder(
    path: bytes, keep: Callable[[Entry], bool] | None = None, limit: int | None = None
) -> Folder:
    """Read one folder (runs in a worker thread, never on the UI loop). Up to `limit`
    entries it lists them all; a larger folder lists the first `limit` that `keep` (what
    the browser shows: the hidden files rule and the filter) keeps, chosen in one pass
    with memory for `limit` of them, and stats only those."""
    limit = LIMIT if limit is None else limit
    try:
        with os.scandir(path) as it:
            first = list(itertools.islice(it, limit + 1))
            if len(first) <= limit:
                return Folder(_entries(path, first))
            counted = [0]

            def kept(items: Iterable[os.DirEntry[bytes]]) -> Iterator[os.DirEntry[bytes]]:
                for item in items:
                    if keep is None or keep(Entry(item.path, _is_dir(item), None)):
                        counted[0] += 1
                        yield item

            picked = heapq.nsmallest(limit, kept(itertools.chain(first, it)), key=_order)
            del first
    except OSError:
        return Folder([])
    return Folder(_entries(path, picked), True, counted[0] - len(picked))


def _is_dir(item: os.DirEntry[bytes]) -> bool:
    try:
        return item.is_dir()  # follows links, like the upload does
    except OSError:
        return False


def _order(item: os.DirEntry[bytes]) -> tuple[bool, bytes]:
    return (not _is_dir(item), item.name.lower())


def _entries(path: bytes, items: list[os.DirEntry[bytes]]) -> list[Entry]:
    entries: list[Entry] = []
    for item in items:
        try:
            st = item.stat()  # follows links, like the upload does
        except OSError:
            entries.append(Entry(os.path.join(path, item.name), False, None))
            continue
        is_dir = stat.S_ISDIR(st.st_mode)
        size = st.st_size if stat.S_ISREG(st.st_mode) else None
        entries.append(Entry(os.path.join(path, item.name), is_dir, size))
    entries.sort(key=lambda e: (not e.is_dir, e.name.lower()))
    return entries


def visible_rule(show_hidden: bool, name_filter: str) -> Callable[[Entry], bool]:
    """Which entries the browser shows: dot files only with `show_hidden`; with a filter,
    folders and the files whose name holds it (or matches it, a glob)."""
    pattern = name_filter.lower()
    glob = any(c in pattern for c in "*?[")

    def visible(entry: Entry) -> bool:
        if entry.hidden and not show_hidden:
            return False
        if pattern and not entry.is_dir:
            name = display_name(entry.path).lower()
            return fnmatch.fnmatch(name, pattern) if glob else pattern in name
        return True

    return visible
