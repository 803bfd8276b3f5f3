"""Presigned URLs go only to the storage origin the backend announced, never with the token
(a protocol edge case: a backend that hands out a foreign URL; httpx.MockTransport)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from synapse_tui.engine.errors import OriginError
from synapse_tui.engine.events import Event, FatalStop
from synapse_tui.engine.storage_http import StorageClient
from tests.faults.helpers import Outcome, make_file, make_manager

API = "http://api.test/api"
TOKEN = "secret-token-123"


def backend(put_url: str, seen: list[httpx.Request]) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        path = request.url.path
        if path.endswith("/storages/"):
            storage = {
                "id": 1,
                "name": "s3",
                "category": "internal",
                "provider": "s3",
                "is_default": True,
                "configuration": {"bucket_name": "bkt", "endpoint_url": "http://storage.test:9000"},
            }
            return httpx.Response(200, json={"results": [storage]})
        if path.endswith("/presigned_upload/upload/"):
            files = json.loads(request.content)["files"]
            entries = [
                {"filename": f["filename"], "file_key": "k", "presigned_url": put_url}
                for f in files
            ]
            return httpx.Response(
                200, json={"files": entries, "expires_at": "2099-01-01T00:00:00Z"}
            )
        if request.method == "PUT":
            return httpx.Response(200, headers={"ETag": '"e"'})
        if path.endswith("/confirm_upload/"):
            results = [
                {"file_key": "k", "checksum": f["checksum"], "data_file_id": 1, "success": True}
                for f in json.loads(request.content)["files"]
            ]
            return httpx.Response(
                200, json={"results": results, "created_count": 1, "failed_count": 0}
            )
        return httpx.Response(404, json={"detail": "Not found."})

    return httpx.MockTransport(handle)


async def run(tmp_path: Path, put_url: str) -> tuple[Outcome, list[httpx.Request]]:
    seen: list[httpx.Request] = []
    events: list[Event] = []
    f = make_file(tmp_path / "f.bin", 100)
    manager = make_manager(API, TOKEN, tmp_path / "state", events, transport=backend(put_url, seen))
    try:
        async with manager as m:
            await m.add_paths([str(f)])
            await m.wait_idle()
    finally:
        manager.journal.close()
    return Outcome(events, tmp_path / "state", 0.0, manager), seen


async def test_a_url_outside_the_announced_storage_stops_everything(tmp_path: Path) -> None:
    outcome, seen = await run(tmp_path, "http://elsewhere.test/bkt/k?X-Amz-Signature=abc")
    (fatal,) = outcome.of(FatalStop)
    assert "outside the storage the backend announced" in fatal.error
    assert "X-Amz-Signature" not in fatal.error  # the URL itself is never shown
    assert not [r for r in seen if r.url.host == "elsewhere.test"]
    assert not outcome.done


async def test_the_storage_gets_no_credentials(tmp_path: Path) -> None:
    outcome, seen = await run(tmp_path, "http://storage.test:9000/bkt/k?X-Amz-Signature=abc")
    assert len(outcome.done) == 1, outcome.logs()
    (put,) = [r for r in seen if r.method == "PUT"]
    assert put.url.host == "storage.test"
    assert TOKEN not in str(put.headers) and "synapse-access-token" not in put.headers
    assert all(r.headers.get("synapse-access-token") for r in seen if r.url.host == "api.test")


def test_virtual_hosted_bucket_urls_are_the_announced_storage() -> None:
    client = StorageClient(transport=httpx.MockTransport(lambda r: httpx.Response(200)))
    client.allow("https://s3.example.com", "Bucket")
    client.check("https://bucket.s3.example.com/key?sig=1")
    client.check("https://s3.example.com/bucket/key?sig=1")
    for bad in (
        "http://s3.example.com/b/k",
        "https://other.example.com/k",
        "https://s3.example.com:8443/k",
    ):
        with pytest.raises(OriginError, match="refused"):
            client.check(bad)
