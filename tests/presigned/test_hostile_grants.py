"""A hostile backend's presigned answers: a part size of one byte must not make the client
build a list of one entry per byte (memory bounded by the answer, not by the file)."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path
from typing import Any

import httpx
import pytest

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


ESC = "\x1b]0;owned\x07\x1b[2J"


def escaping_handler(provider: str) -> Any:
    def handle(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/storages/"):
            storage = {"provider": provider, "is_default": True,
                       "configuration": {"endpoint_url": STORAGE + "/" + ESC}}  # fmt: skip
            return httpx.Response(200, json={"results": [storage]})
        if path.endswith("/presigned_upload/upload/"):
            files = [{"filename": "f", "file_key": "k0", "presigned_url": f"{STORAGE}/k0"}]
            return httpx.Response(200, json={"files": files, "expires_at": "2099-01-01T00:00:00Z"})
        if request.method == "PUT" and request.url.host == "storage.test":
            return httpx.Response(200, headers={"ETag": '"e"'})
        if path.endswith("/presigned_upload/confirm_upload/"):
            result = {"file_key": "k0", "success": False, "error": ESC + "refused"}
            return httpx.Response(200, json={"results": [result]})
        return httpx.Response(404, json={"detail": "Not found."})

    return handle


async def test_server_text_of_the_presigned_path_is_escaped(tmp_path: Path) -> None:
    f = make_file(tmp_path / "f.bin", 1000, seed=2)
    outcome = await run_engine(
        "http://api.test/api", "tok", [f], tmp_path / "s",
        transport=httpx.MockTransport(escaping_handler("s3")), strategy="presigned",
    )  # fmt: skip
    (failed,) = outcome.failed
    assert "refused" in failed.error and "\x1b" not in failed.error, failed
    assert not [line for line in outcome.logs() if "\x1b" in line], outcome.logs()
    outcome = await run_engine(
        "http://api.test/api", "tok", [f], tmp_path / "s2",
        transport=httpx.MockTransport(escaping_handler(ESC)), strategy="presigned",
    )  # fmt: skip
    (fatal,) = outcome.fatal
    assert "not presigned" in fatal.error and "\x1b" not in fatal.error, fatal


def test_an_endpoint_with_an_invalid_port_is_an_origin_error() -> None:
    from synapse_tui.engine.errors import OriginError
    from synapse_tui.engine.storage_http import StorageClient

    client = StorageClient(transport=httpx.MockTransport(handler))
    with pytest.raises(OriginError):
        client.allow("http://storage.test:99999")


def unwell_backend(failing: str) -> Any:
    """A backend whose `failing` presigned route answers 503 for ever (the rest works)."""

    def handle(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith(failing):
            return httpx.Response(503, json={"detail": "down for maintenance"})
        if path.endswith("/storages/"):
            storage = {"provider": "s3", "is_default": True,
                       "configuration": {"endpoint_url": STORAGE}}  # fmt: skip
            return httpx.Response(200, json={"results": [storage]})
        if path.endswith("/presigned_upload/upload/"):
            files = [{"filename": "f", "file_key": "k0", "presigned_url": f"{STORAGE}/k0"}]
            return httpx.Response(200, json={"files": files, "expires_at": "2099-01-01T00:00:00Z"})
        if request.method == "PUT" and request.url.host == "storage.test":
            return httpx.Response(200, headers={"ETag": '"e"'})
        return httpx.Response(404, json={"detail": "Not found."})

    return handle


@pytest.mark.parametrize("failing", ["/presigned_upload/upload/", "/confirm_upload/"])
async def test_a_backend_down_past_the_retries_leaves_the_file_resumable(
    tmp_path: Path, failing: str
) -> None:
    f = make_file(tmp_path / "f.bin", 1000, seed=3)
    outcome = await run_engine(
        "http://api.test/api", "tok", [f], tmp_path / "s", retries=2,
        transport=httpx.MockTransport(unwell_backend(failing)), strategy="presigned",
    )  # fmt: skip
    (failed,) = outcome.failed
    assert failed.resumable, failed  # as the chunked path leaves it: paused, not failed
    assert outcome.states() == [JobState.PAUSED]
