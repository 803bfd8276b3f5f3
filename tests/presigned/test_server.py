"""The embedded backend's presigned routes against a real S3-compatible server (moto)."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
import pytest

from tests.harness.embedded import EmbeddedServer
from tests.harness.moto import MotoServer
from tests.presigned.conftest import PART, THRESHOLD


def post(server: EmbeddedServer, path: str, body: Any, token: str | None = None) -> httpx.Response:
    return httpx.post(f"{server.url}/{path}", json=body, headers=server.headers(token), timeout=30)


def upload_batch(server: EmbeddedServer, files: list[tuple[str, int]]) -> dict[str, Any]:
    answer = post(
        server,
        "data_files/presigned_upload/upload/",
        {"files": [{"filename": n, "size": s} for n, s in files], "expiration": 600},
    )
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def confirm(server: EmbeddedServer, items: list[dict[str, Any]], token: str | None = None) -> Any:
    answer = post(server, "data_files/presigned_upload/confirm_upload/", {"files": items}, token)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_storages_report_the_s3_storage_without_credentials(
    s3_server: EmbeddedServer, moto: MotoServer
) -> None:
    answer = httpx.get(
        f"{s3_server.url}/storages/", params={"category": "internal"}, headers=s3_server.headers()
    )
    assert answer.status_code == 200
    (storage,) = answer.json()["results"]
    assert storage["provider"] == "s3" and storage["is_default"]
    assert storage["configuration"]["endpoint_url"] == moto.endpoint
    assert "moto-test-secret" not in answer.text and "moto-test-key" not in answer.text
    assert httpx.get(f"{s3_server.url}/storages/").status_code == 401


def test_without_storage_a_local_disk_storage_is_listed_and_presigned_is_refused(
    embedded_server: EmbeddedServer,
) -> None:
    answer = httpx.get(f"{embedded_server.url}/storages/", headers=embedded_server.headers())
    (storage,) = answer.json()["results"]
    assert storage["provider"] == "file_system"
    refused = post(
        embedded_server,
        "data_files/presigned_upload/upload/",
        {"files": [{"filename": "a", "size": 1}]},
    )
    assert refused.status_code == 400
    assert "no presigned storage" in refused.json()["detail"]


def test_single_put_then_confirm_creates_one_data_file(
    s3_server: EmbeddedServer, moto: MotoServer
) -> None:
    data = b"hello presigned" * 100
    answer = upload_batch(s3_server, [("a.txt", len(data)), ("b.txt", 0)])
    first, second = answer["files"]
    assert first["filename"] == "a.txt" and first["file_key"].startswith("up/")
    assert "multipart" not in first or first["multipart"] is None
    assert httpx.put(first["presigned_url"], content=data).status_code == 200
    assert httpx.put(second["presigned_url"], content=b"").status_code == 200
    sha1 = hashlib.sha1(data).hexdigest()
    items = [
        {"file_key": first["file_key"], "checksum": sha1, "size": len(data)},
        {"file_key": second["file_key"], "checksum": hashlib.sha1().hexdigest(), "size": 0},
    ]
    result = confirm(s3_server, items)
    assert result["created_count"] == 2 and result["failed_count"] == 0
    assert moto.object_bytes(first["file_key"]) == data
    # A lost answer, confirmed again: the same data file, not a second one.
    again = confirm(s3_server, items[:1])
    assert again["results"][0]["data_file_id"] == result["results"][0]["data_file_id"]
    # Another token does not see the key.
    other = confirm(s3_server, items[:1], token=s3_server.other_token)
    assert other["results"][0]["success"] is False
    assert other["results"][0]["error"] == "unknown file key"


def test_checksum_mismatch_is_refused_and_the_object_deleted(
    s3_server: EmbeddedServer, moto: MotoServer
) -> None:
    (entry,) = upload_batch(s3_server, [("c.bin", 3)])["files"]
    httpx.put(entry["presigned_url"], content=b"abc")
    wrong = hashlib.sha1(b"abd").hexdigest()
    (result,) = confirm(s3_server, [{"file_key": entry["file_key"], "checksum": wrong, "size": 3}])[
        "results"
    ]
    assert result["success"] is False and "checksum mismatch" in result["error"]
    assert moto.client().list_objects_v2(Bucket=moto.bucket).get("KeyCount") == 0


def test_size_and_absence_are_checked(s3_server: EmbeddedServer) -> None:
    first, second = upload_batch(s3_server, [("d", 4), ("e", 4)])["files"]
    httpx.put(first["presigned_url"], content=b"abc")  # one byte short
    sha1 = hashlib.sha1(b"abcd").hexdigest()
    results = confirm(
        s3_server,
        [
            {"file_key": first["file_key"], "checksum": sha1, "size": 4},
            {"file_key": second["file_key"], "checksum": sha1, "size": 4},
        ],
    )["results"]
    assert "storage holds 3 bytes" in results[0]["error"]
    assert results[1]["error"] == "nothing was uploaded to this key"


def test_large_file_goes_multipart_and_is_completed_at_confirm(
    s3_server: EmbeddedServer, moto: MotoServer
) -> None:
    size = THRESHOLD + PART  # three parts: 5 MiB, 5 MiB, 1 MiB
    data = bytes(range(256)) * (size // 256)
    (entry,) = upload_batch(s3_server, [("big.bin", size)])["files"]
    multipart = entry["multipart"]
    assert multipart["part_size"] == PART
    assert [p["part_number"] for p in multipart["parts"]] == [1, 2, 3]
    parts = []
    for part in reversed(multipart["parts"]):  # any order: parts are independent
        n = part["part_number"]
        body = data[(n - 1) * PART : n * PART]
        put = httpx.put(part["presigned_url"], content=body, timeout=30)
        assert put.status_code == 200
        parts.append({"part_number": n, "etag": put.headers["ETag"]})
    item = {
        "file_key": entry["file_key"],
        "checksum": hashlib.sha1(data).hexdigest(),
        "size": size,
        "multipart": {"upload_id": multipart["upload_id"], "parts": parts},
    }
    (result,) = confirm(s3_server, [item])["results"]
    assert result["success"], result
    assert moto.object_bytes(entry["file_key"]) == data
    (again,) = confirm(s3_server, [item])["results"]  # lost answer: same data file
    assert again["data_file_id"] == result["data_file_id"]


def test_fresh_urls_for_missing_parts(s3_server: EmbeddedServer) -> None:
    (entry,) = upload_batch(s3_server, [("big.bin", THRESHOLD + 1)])["files"]
    answer = post(
        s3_server,
        "data_files/presigned_upload/parts/",
        {"file_key": entry["file_key"], "part_numbers": [2], "expiration": 600},
    )
    assert answer.status_code == 200, answer.text
    assert [p["part_number"] for p in answer.json()["multipart"]["parts"]] == [2]
    bad = post(
        s3_server,
        "data_files/presigned_upload/parts/",
        {"file_key": entry["file_key"], "part_numbers": [3]},
    )
    assert bad.status_code == 400


@pytest.mark.parametrize(
    "body",
    [
        {"files": []},
        {"files": [{"filename": "", "size": 1}]},
        {"files": [{"filename": "a", "size": -1}]},
        {"files": [{"filename": "a", "size": 1}] * 201},
        {"files": [{"filename": "a", "size": 1}], "expiration": 5},
        [1, 2],
    ],
)
def test_bad_batches_get_400(s3_server: EmbeddedServer, body: Any) -> None:
    answer = post(s3_server, "data_files/presigned_upload/upload/", body)
    assert answer.status_code == 400
