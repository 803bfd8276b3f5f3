"""The drf-chunked-upload fixture serves the real library, checked with plain httpx."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.harness.proxy import Fault, Rule, ThreadedFaultProxy

if TYPE_CHECKING:
    from tests.harness.drf import DrfServer

# Provides the drf_server fixture; harmless if tests/conftest.py registers it too.
# tests.harness.drf is imported lazily below so that pytest can assertion-rewrite it.
pytest_plugins = ["tests.harness.drf"]

TIMEOUT = 30.0


def put_chunk(
    c: httpx.Client,
    url: str,
    data: bytes,
    start: int,
    total: int,
    headers: dict[str, str],
    filename: str = "f.bin",
) -> httpx.Response:
    end = start + len(data) - 1
    return c.put(
        url,
        headers={**headers, "Content-Range": f"bytes {start}-{end}/{total}"},
        data={"filename": filename},
        files={"file": (filename, data, "application/octet-stream")},
    )


def finalize(c: httpx.Client, url: str, whole: bytes, headers: dict[str, str]) -> httpx.Response:
    return c.post(url, headers=headers, data={"md5": hashlib.md5(whole).hexdigest()})


def test_two_chunk_upload_and_finalize(drf_server: DrfServer) -> None:
    payload = bytes(range(256)) * 4096 + b"tail"  # 1 MiB + 4 bytes
    first, second = payload[:600_000], payload[600_000:]
    auth = drf_server.auth()
    with httpx.Client(timeout=TIMEOUT) as c:
        r = put_chunk(c, drf_server.url + "/chunked_upload/", first, 0, len(payload), auth)
        assert r.status_code == 200, r.text
        body = r.json()
        upload_id, url = body["id"], body["url"]
        uuid.UUID(upload_id)
        assert url == f"{drf_server.url}/chunked_upload/{upload_id}/"
        assert (body["offset"], body["status"], body["completed_at"]) == (600_000, 1, None)
        assert drf_server.stored_bytes(upload_id) == first
        assert drf_server.upload_path(upload_id).suffix == ".part"

        r = put_chunk(c, url, second, 600_000, len(payload), auth)
        assert r.status_code == 200 and r.json()["offset"] == len(payload)

        r = c.post(url, headers=auth, data={"md5": "0" * 32})
        assert r.status_code == 400 and r.json() == {"detail": "checksum does not match"}

        r = finalize(c, url, payload, auth)
        assert r.status_code == 200, r.text
        assert r.json()["status"] == 2 and r.json()["completed_at"] is not None
        assert drf_server.stored_bytes(upload_id) == payload
        assert drf_server.upload_path(upload_id).suffix == ".done"

        assert c.get(url, headers=auth).json()["status"] == 2
        listed = c.get(drf_server.url + "/chunked_upload/", headers=auth).json()
        assert [u["id"] for u in listed] == [upload_id]
        r = finalize(c, url, payload, auth)
        assert r.status_code == 400
        assert r.json() == {"detail": 'Upload has already been marked as "complete"'}


def test_offset_mismatch_reports_expected_offset(drf_server: DrfServer) -> None:
    auth = drf_server.auth()
    with httpx.Client(timeout=TIMEOUT) as c:
        r = put_chunk(c, drf_server.url + "/chunked_upload/", b"abcde", 0, 10, auth)
        url = r.json()["url"]
        r = put_chunk(c, url, b"fgh", 3, 10, auth)
        assert r.status_code == 400
        assert r.json() == {
            "detail": "Offsets do not match",
            "expected_offset": 5,
            "provided_offset": 3,
        }
        r = c.put(url, headers=auth, data={"filename": "f.bin"}, files={"file": ("f", b"x")})
        assert r.status_code == 400 and r.json() == {"detail": "Error in request headers"}


def test_other_user_gets_404_and_credentials_are_checked(drf_server: DrfServer) -> None:
    root = drf_server.url + "/chunked_upload/"
    with httpx.Client(timeout=TIMEOUT) as c:
        r = put_chunk(c, root, b"abc", 0, 6, drf_server.auth())
        url = r.json()["url"]
        bob = drf_server.auth(drf_server.other_token)
        assert c.get(url, headers=bob).status_code == 404
        assert put_chunk(c, url, b"def", 3, 6, bob).status_code == 404
        assert finalize(c, url, b"abcdef", bob).status_code == 404
        assert c.get(root, headers=bob).json() == []

        r = c.get(root)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Token"
        assert put_chunk(c, root, b"abc", 0, 3, {}).status_code == 401
        bad = {"Synapse-Access-Token": "Token nope"}
        assert c.get(url, headers=bad).status_code == 401
        assert c.get(url, headers={"Synapse-Access-Token": "Bearer x"}).status_code == 401
        # The alternative header form is accepted too.
        r = c.get(url, headers={"Authorization": f"Token {drf_server.token}"})
        assert r.status_code == 200 and r.json()["offset"] == 3


def test_expired_upload_answers_410(tmp_path: Path) -> None:
    from tests.harness.drf import run_drf_server

    # expired == created_at + delta <= now: with a zero delta every upload is
    # expired as soon as it exists (the creating PUT itself still succeeds).
    with run_drf_server(tmp_path, expire_seconds=0) as srv, httpx.Client(timeout=TIMEOUT) as c:
        r = put_chunk(c, srv.url + "/chunked_upload/", b"abc", 0, 6, srv.auth())
        assert r.status_code == 200
        url = r.json()["url"]
        r = put_chunk(c, url, b"def", 3, 6, srv.auth())
        assert r.status_code == 410 and r.json() == {"detail": "Upload has expired"}
        assert finalize(c, url, b"abc", srv.auth()).status_code == 410
        assert c.get(url, headers=srv.auth()).status_code == 200  # GET does not check expiry


def test_max_bytes_limit(tmp_path: Path) -> None:
    from tests.harness.drf import run_drf_server

    with run_drf_server(tmp_path, max_bytes=100) as srv, httpx.Client(timeout=TIMEOUT) as c:
        r = put_chunk(c, srv.url + "/chunked_upload/", b"a" * 10, 0, 101, srv.auth())
        assert r.status_code == 400
        assert r.json() == {"detail": "Size of file exceeds the limit (100 bytes)"}
        r = put_chunk(c, srv.url + "/chunked_upload/", b"a" * 10, 0, 100, srv.auth())
        assert r.status_code == 200


def test_restart_mid_upload_keeps_state(drf_server: DrfServer) -> None:
    auth = drf_server.auth()
    with httpx.Client(timeout=TIMEOUT) as c:
        url = put_chunk(c, drf_server.url + "/chunked_upload/", b"12345", 0, 10, auth).json()["url"]
    drf_server.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(url, headers=auth)
    drf_server.start()
    with httpx.Client(timeout=TIMEOUT) as c:
        assert c.get(url, headers=auth).json()["offset"] == 5
        assert put_chunk(c, url, b"67890", 5, 10, auth).status_code == 200
        assert finalize(c, url, b"1234567890", auth).json()["status"] == 2


def test_lost_acknowledgement_through_proxy(drf_server: DrfServer) -> None:
    auth = drf_server.auth()
    with ThreadedFaultProxy("127.0.0.1", drf_server.port) as proxy:
        api = proxy.url + "/api"
        proxy.add_rule(Rule(Fault("drop_response"), method="PUT", nth=2))
        with httpx.Client(timeout=TIMEOUT) as c:
            r = put_chunk(c, api + "/chunked_upload/", b"abc", 0, 9, auth)
            url = r.json()["url"]
            assert url.startswith(api + "/")  # built from Host: goes through the proxy
            with pytest.raises(httpx.RemoteProtocolError):
                put_chunk(c, url, b"def", 3, 9, auth)
            # The server applied the chunk whose answer was lost.
            r = put_chunk(c, url, b"def", 3, 9, auth)
            assert r.status_code == 400 and r.json()["expected_offset"] == 6
            assert put_chunk(c, url, b"ghi", 6, 9, auth).status_code == 200
            assert finalize(c, url, b"abcdefghi", auth).json()["status"] == 2
        upload_id = url.rstrip("/").rsplit("/", 1)[1]
        assert drf_server.stored_bytes(upload_id) == b"abcdefghi"
        # The proxy's thread marks a response delivered after its last byte is written,
        # which can be after the client has read it: wait for the proxy to finish all five.
        proxy.wait_for(lambda p: len(p.requests) == 5 and all(q.done for q in p.requests))
        assert [(q.method, q.status, q.delivered) for q in proxy.requests] == [
            ("PUT", 200, True),
            ("PUT", 200, False),
            ("PUT", 400, True),
            ("PUT", 200, True),
            ("POST", 200, True),
        ]
