"""Shared set-up of the large-folder browser tests: a folder `many/` of 300 files under a
listing limit of 20, opened in the dashboard."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from synapse_tui.ui import listing
from synapse_tui.ui.listing import Folder
from synapse_tui.ui.widgets import file_browser
from synapse_tui.ui.widgets.file_browser import FileBrowser
from tests.ui.conftest import wait_for

LIMIT = 20  # the browser's listing limit in these tests
MANY = 300  # files in many/


def fill(folder: Path, count: int) -> None:
    """`count` files img_NNNNNN.jpg of NNNNNN % 5 bytes, not created in name order."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        n = (i * 7919) % count
        (folder / f"img_{n:06d}.jpg").write_bytes(b"x" * (n % 5))


def big_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """top/many/ with MANY files, listed LIMIT at a time; returns top/."""
    monkeypatch.setattr(listing, "LIMIT", LIMIT)
    root = tmp_path / "top"
    fill(root / "many", MANY)
    return root


@asynccontextmanager
async def opened(app_factory: Any, root: Path, entries: int = 1) -> AsyncIterator[Any]:
    """The dashboard in `root` (`entries` at its top), many/ expanded: its first LIMIT and
    the "… more" line. Yields the pilot (`pilot.app.dashboard.browser`)."""
    app = app_factory(start_engine=False, directory=root)
    async with app.run_test(size=(80, 24)) as pilot:
        browser: FileBrowser = app.dashboard.browser
        await wait_for(pilot, lambda: len(browser.root.children) == entries)
        many = browser.root.children[0]
        await pilot.press("l")
        await wait_for(pilot, lambda: len(many.children) == LIMIT + 1)
        yield pilot


def count_loaded(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The folders whose listing reached the UI, in order (stale ones too)."""
    loaded: list[bytes] = []
    real_loaded = FileBrowser._loaded

    def counted(browser: FileBrowser, path: bytes, *args: Any) -> None:
        real_loaded(browser, path, *args)
        loaded.append(path)

    monkeypatch.setattr(FileBrowser, "_loaded", counted)
    return loaded


def held_listing(
    monkeypatch: pytest.MonkeyPatch, when: Callable[[bytes, Any], bool]
) -> tuple[threading.Event, list[bytes]]:
    """Listings for which `when(path, keep)` holds wait, once read, until the event is set;
    the list names each one held."""
    real = file_browser.list_folder
    hold = threading.Event()
    held: list[bytes] = []

    def list_folder(path: bytes, keep: Any = None, limit: int | None = None) -> Folder:
        folder = real(path, keep, limit)
        if when(path, keep):
            held.append(path)
            assert hold.wait(20)
        return folder

    monkeypatch.setattr(file_browser, "list_folder", list_folder)
    return hold, held
