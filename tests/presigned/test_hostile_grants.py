"""A hostile backend's presigned answers: a part size of one byte must not make the client
build a list of one entry per byte (memory bounded by the answer, not by the file)."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import httpx

from synapse_tui.engine.events import JobState
from tests.faults.helpers import make_file, run_engine

STORAGE = "http://storage.test"


def handler(request: httpx.Request) -> httpx.Response:
    path = request.url.path
    if path.endswith("/storages/"):
        storage = {"provider": "s3", "is_default": True, "category": "internal",
                   "configuration": {"endpoint_url": STORAGE}}  # fmt: skip
        return httpx.Response(200, json={"results": [storage]})
    if path.endswith("/presigned_upload/upload/"):
        names = [f["filename"] for f in json.loads(request.content)["files"]]
        part = {"part_number": 1, "presigned_url": f"{STORAGE}/k?partNumber=1"}
        files = [{"filename": n, "file_key": f"k{i}",
                  "multipart": {"upload_id": "u", "part_size": 1, "parts": [part]}}
                 for i, n in enumerate(names)]  # fmt: skip
        return httpx.Response(200, json={"files": files, "expires_at": "2099-01-01T00:00:00Z"})
    return httpx.Response(404, json={"detail": "Not found."})


async def test_a_one_byte_part_size_is_refused_without_a_list_per_byte(tmp_path: Path) -> None:
    f = make_file(tmp_path / "f.bin", 4 << 20, seed=1)
    tracemalloc.start()
    try:
        outcome = await run_engine(
            "http://api.test/api", "tok", [f], tmp_path / "s",
            transport=httpx.MockTransport(handler), strategy="presigned",
        )  # fmt: skip
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert outcome.states() == [JobState.FAILED], outcome.logs()
    (failed,) = outcome.failed
    assert "parts" in failed.error, failed
    # A list of 4 Mi part numbers is over 100 MiB; the engine's own needs are a few MiB.
    assert peak < 40 << 20, peak
