"""The presigned routes under abuse: capped bodies, bounded URL lists, no rows for refusals."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from typing import Any

import httpx

from synapse_tui.server.bodies import JSON_LIMIT
from tests.harness.embedded import EmbeddedServer
from tests.presigned.conftest import PART, THRESHOLD

UPLOAD = "data_files/presigned_upload/upload/"
CONFIRM = "data_files/presigned_upload/confirm_upload/"
PARTS = "data_files/presigned_upload/parts/"


def post(server: EmbeddedServer, path: str, body: Any, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{server.url}/{path}", json=body, headers={**server.headers(), **headers}, timeout=60
    )


def user_rows(server: EmbeddedServer) -> int:
    with contextlib.closing(sqlite3.connect(server.root / "uploads.sqlite3")) as db:
        (count,) = db.execute("SELECT count(*) FROM users").fetchone()
    return int(count)


def test_a_presigned_request_body_over_the_json_cap_is_refused_unread(
    s3_server: EmbeddedServer,
) -> None:
    body = json.dumps({"files": [], "pad": "x" * (JSON_LIMIT + 1)}).encode()
    for path in (UPLOAD, CONFIRM, PARTS):
        answer = httpx.post(
            f"{s3_server.url}/{path}",
            content=body,
            headers={**s3_server.headers(), "Content-Type": "application/json"},
            timeout=60,
        )
        assert answer.status_code == 413, (path, answer.text)


def test_fresh_part_urls_are_bounded_by_the_parts_of_the_file(
    s3_server: EmbeddedServer,
) -> None:
    size = THRESHOLD + 1  # two parts of PART bytes
    granted = post(s3_server, UPLOAD, {"files": [{"filename": "big", "size": size}]})
    assert granted.status_code == 200, granted.text
    key = granted.json()["files"][0]["file_key"]
    count = -(-size // PART)
    fine = post(s3_server, PARTS, {"file_key": key, "part_numbers": [1, 2]})
    assert fine.status_code == 200 and len(fine.json()["multipart"]["parts"]) == count
    # The same part number 50,000 times: refused, not 50,000 signatures on the event loop.
    flood = post(s3_server, PARTS, {"file_key": key, "part_numbers": [1] * 50_000})
    assert flood.status_code == 400, flood.text[:200]
    assert "part_numbers" in flood.json()


def test_a_refused_url_request_of_a_new_tenant_makes_no_user_row(
    s3_server: EmbeddedServer, embedded_server: EmbeddedServer
) -> None:
    for server, body in (
        (s3_server, {"files": [{"filename": "", "size": -1}]}),  # invalid files
        (s3_server, {"files": "none"}),
        (embedded_server, {"files": [{"filename": "a", "size": 1}]}),  # no storage at all
    ):
        before = user_rows(server)
        for i in range(20):
            answer = post(server, UPLOAD, body, **{"Synapse-Tenant": f"t{i}"})
            assert answer.status_code == 400, answer.text
        assert user_rows(server) == before
    granted = post(s3_server, UPLOAD, {"files": [{"filename": "a", "size": 1}]},
                   **{"Synapse-Tenant": "stores"})  # fmt: skip
    assert granted.status_code == 200 and user_rows(s3_server) == before + 1


def test_a_size_beyond_any_object_is_a_field_error_not_a_crash(
    s3_server: EmbeddedServer,
) -> None:
    for size in (10**30, (5 << 40) + 1):
        answer = post(s3_server, UPLOAD, {"files": [{"filename": "huge", "size": size}]})
        assert answer.status_code == 400, answer.text[:300]
        assert "size" in answer.json()["files"][0]
