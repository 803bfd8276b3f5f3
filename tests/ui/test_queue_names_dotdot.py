"""The queue names a job relative to the dashboard's folder only when the job lies inside
it, as the log does. Started on `link/..` (the link target's parent), a file of the
current folder is not inside it, though folding `..` away (os.path.relpath) says it is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.ui.conftest import wait_for


async def test_a_file_outside_the_folder_is_named_in_full(
    app_factory: Any, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    here = tmp_path / "here"
    here.mkdir()
    own = here / "own.bin"  # the current folder's: not in the link target's parent
    own.write_bytes(b"the current folder's own file")
    (here / "link").symlink_to(data_dir / "images")
    monkeypatch.chdir(here)
    app = app_factory(directory="link/..")
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.bridge is not None)
        inside = app.dashboard.browser.root_path + b"/alpha.txt"  # data_dir's, as listed
        app.bridge.queue_paths([inside, bytes(own)])
        queue = app.dashboard.queue
        await wait_for(pilot, lambda: len(queue.rows_by_id) == 2)
        names = sorted(queue._names.values())
        assert names == sorted(["alpha.txt", str(own)]), names
        await app.shutdown_engine()
