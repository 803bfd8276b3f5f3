"""The dashboard started on a relative folder through a symbolic link and `..`
(`synapse-tui link/..`) lists the folder the kernel and `ls` name, the link target's
parent, as `upload link/..` uploads it: not the current folder."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from synapse_tui.config import Settings
from synapse_tui.ui.service_bridge import ServiceBridge
from tests.ui.conftest import wait_for
from tests.ui.test_browser import names
from tests.ui.test_service_bridge_batching import Target


async def test_the_browser_lists_the_link_targets_parent(
    app_factory: Any, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    here = tmp_path / "here"
    here.mkdir()
    (here / "unwanted.bin").write_bytes(b"the current folder's own file")
    (here / "link").symlink_to(data_dir / "images")
    monkeypatch.chdir(here)
    app = app_factory(directory="link/..", start_engine=False)
    async with app.run_test(size=(80, 24)) as pilot:
        browser = app.dashboard.browser
        await wait_for(pilot, lambda: len(browser.root.children) >= 5)
        listed = names(browser)
        assert b"alpha.txt" in listed and b"images" in listed
        assert b"unwanted.bin" not in listed and b"link" not in listed
        assert browser.root_path == str(here / "link" / "..").encode()


async def test_the_engine_is_asked_for_the_path_as_listed() -> None:
    """Through the background engine (which runs in "/"), a path under such a root keeps
    its `..`: folded away, it would name a file of another folder."""
    sent: list[Any] = []

    class Client:
        async def request(self, command: Any) -> dict[str, Any]:
            sent.append(command)
            return {"batch": 1}

    bridge = ServiceBridge(Target(), Settings())
    bridge.client = Client()  # type: ignore[assignment]
    bridge.queue_paths([b"/x/here/link/../alpha.txt", b"/x/./y//z.bin"])
    await asyncio.gather(*bridge._tasks)
    assert [c.paths for c in sent] == [["/x/here/link/../alpha.txt", "/x/y/z.bin"]]
