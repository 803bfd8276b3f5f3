"""Folder listings for the file browser, read off the UI thread."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass


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


def list_folder(path: bytes) -> list[Entry]:
    """Read one folder (runs in a worker thread, never on the UI loop)."""
    entries: list[Entry] = []
    try:
        with os.scandir(path) as it:
            for item in it:
                try:
                    st = item.stat()  # follows links, like the upload does
                except OSError:
                    entries.append(Entry(os.path.join(path, item.name), False, None))
                    continue
                is_dir = stat.S_ISDIR(st.st_mode)
                size = st.st_size if stat.S_ISREG(st.st_mode) else None
                entries.append(Entry(os.path.join(path, item.name), is_dir, size))
    except OSError:
        return []
    entries.sort(key=lambda e: (not e.is_dir, e.name.lower()))
    return entries
