"""The embedded backend under abuse: odd methods, absurd headers, a full disk, stalled bodies,
tenant floods. Each answer is a clear status, never a 500 with a traceback."""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from synapse_tui.server.group_commit import GroupCommitter
from tests.harness.embedded import EmbeddedServer
from tests.server.helpers import (
    BOUNDARY,
    CONTENT_TYPE,
    RawRequest,
    auth,
    form_body,
    md5,
    put,
    raw_chunk,
    upload_rest,
    wait_until,
)

DATA = bytes(range(256)) * 40  # 10240 bytes


@pytest.fixture(autouse=True)
def no_tracebacks(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Every case here must be answered without the server logging an exception."""
    caplog.set_level(logging.WARNING)
    yield
    crashes = [r for r in caplog.records if r.exc_info is not None or r.levelno >= logging.ERROR]
    assert not crashes, [r.getMessage() for r in crashes]


def test_head_on_chunked_upload(embedded_server: EmbeddedServer, client: httpx.Client) -> None:
    srv = embedded_server
    r = put(client, srv.url + "/chunked_upload/", DATA[:100], token=srv.token, total=len(DATA))
    item = r.json()["url"]
    for url in (srv.url + "/chunked_upload/", item):
        r = client.head(url)
        assert (r.status_code, r.content) == (401, b""), url
        assert r.headers["www-authenticate"] == "Token"
        assert client.head(url, headers=auth(srv.token)).status_code == 200, url
    assert client.head(item, headers=auth(srv.other_token)).status_code == 404
    r = client.request("OPTIONS", srv.url + "/chunked_upload/", headers=auth(srv.token))
    assert (r.status_code, r.json()) == (405, {"detail": 'Method "OPTIONS" not allowed.'})


def send(raw: RawRequest, request: bytes) -> tuple[int, Any]:
    raw.send(request)
    return raw.response()


@pytest.mark.parametrize(
    "content_range",
    [
        "bytes 0-9/" + "9" * 5000,
        "bytes 0-" + "9" * 5000 + "/" + "9" * 5001,
        "bytes " + "0" * 5000 + "-9/10",
        f"bytes 0-9/{1 << 63}",  # beyond SQLite's 64-bit integers
        "bytes 0-9/1" + "0" * 25,
    ],
    ids=["total", "end", "start-zeros", "2^63", "26-digits"],
)
def test_absurd_content_range_is_400_and_the_connection_stays_usable(
    embedded_server: EmbeddedServer, content_range: str
) -> None:
    srv = embedded_server
    head = (
        b'--b\r\nContent-Disposition: form-data; name="filename"\r\n\r\nf\r\n'
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="f"\r\n\r\n'
    )
    body = head + DATA[:10] + b"\r\n--b--\r\n"
    headers = {
        **auth(srv.token),
        "Content-Type": "multipart/form-data; boundary=b",
        "Content-Range": content_range,
    }
    raw = RawRequest(srv.url + "/chunked_upload/", "PUT", headers, len(body))
    try:
        raw.send(body)
        assert raw.response() == (400, {"detail": "Error in request headers"})
        # The same connection serves the next request.
        get = (
            f"GET /api/chunked_upload/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Synapse-Access-Token: Token {srv.token}\r\n\r\n"
        ).encode()
        assert send(raw, get) == (200, [])
    finally:
        raw.close()
    assert list((srv.root / "files").iterdir()) == []


class DiskFull:
    """A connection whose COMMIT fails as SQLite's does on a full disk (SQLITE_FULL)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    @property
    def in_transaction(self) -> bool:
        return self._db.in_transaction

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if sql == "COMMIT":
            error = sqlite3.OperationalError("database or disk is full")
            error.sqlite_errorcode = sqlite3.SQLITE_FULL
            error.sqlite_errorname = "SQLITE_FULL"
            raise error
        return self._db.execute(sql, *args)


def test_database_full_is_507(
    embedded_server: EmbeddedServer, client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    srv = embedded_server
    store = srv.backend.store
    first = put(client, srv.url + "/chunked_upload/", DATA[:4096], token=srv.token,
                total=len(DATA)).json()  # fmt: skip
    whole = client.post(srv.url + "/chunked_upload/", data={"filename": "w", "md5": md5(b"w")},
                        files={"file": ("w", b"w")}, headers=auth(srv.token)).json()  # fmt: skip
    full = GroupCommitter(DiskFull(store._connect()), lambda: None)  # type: ignore[arg-type]
    monkeypatch.setattr(store, "_rows", full)  # this store's commit thread only
    insufficient = (507, {"detail": "Insufficient storage"})
    try:
        r = put(client, first["url"], DATA[4096:], token=srv.token, start=4096, total=len(DATA))
        assert (r.status_code, r.json()) == insufficient  # the offset cannot move
        r = put(client, srv.url + "/chunked_upload/", DATA[:10], token=srv.token, total=10)
        assert (r.status_code, r.json()) == insufficient  # nor an upload be created
        r = client.post(srv.url + "/chunked_upload/", data={"filename": "x", "md5": md5(b"x")},
                        files={"file": ("x", b"x")}, headers=auth(srv.token))  # fmt: skip
        assert (r.status_code, r.json()) == insufficient
        assert sorted(p.name for p in (srv.root / "files").iterdir()) == sorted(
            [first["id"], whole["id"]]
        )
    finally:
        monkeypatch.undo()
        full.close()
    # Space again: the same chunk goes through, and finalize.
    r = put(client, first["url"], DATA[4096:], token=srv.token, start=4096, total=len(DATA))
    assert r.status_code == 200, r.text
    r = client.post(first["url"], data={"md5": md5(DATA)}, headers=auth(srv.token))
    assert (r.status_code, r.json()["status"]) == (200, 2)
    assert (srv.root / "files" / first["id"]).read_bytes() == DATA


def test_finalize_on_a_full_database_is_507(
    embedded_server: EmbeddedServer, client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    srv = embedded_server
    store = srv.backend.store
    body = put(client, srv.url + "/chunked_upload/", DATA, token=srv.token).json()
    full = GroupCommitter(DiskFull(store._connect()), lambda: None)  # type: ignore[arg-type]
    monkeypatch.setattr(store, "_rows", full)
    try:
        r = client.post(body["url"], data={"md5": md5(DATA)}, headers=auth(srv.token))
        assert (r.status_code, r.json()) == (507, {"detail": "Insufficient storage"})
    finally:
        monkeypatch.undo()
        full.close()
    r = client.post(body["url"], data={"md5": md5(DATA)}, headers=auth(srv.token))
    assert (r.status_code, r.json()["status"]) == (200, 2)


def body_threads() -> list[threading.Thread]:
    names = ("synapse-writer", "synapse-hasher", "synapse-syncer")
    return [t for t in threading.enumerate() if t.name in names]


def read_to_close(raw: RawRequest) -> bytes:
    rest = b""
    while got := raw.sock.recv(65536):
        rest += got
    return rest


@pytest.mark.parametrize("sent", [2 << 20, 1000], ids=["streamed", "small"])
def test_a_stalled_body_is_408_and_frees_the_upload(
    make_server: Any, client: httpx.Client, sent: int
) -> None:
    srv = make_server(prefix="/api", body_timeout=1.0)
    data = os.urandom(6 << 20)
    r = put(client, srv.url + "/chunked_upload/", data[:100], token=srv.token, total=len(data))
    body = r.json()
    assert not body_threads()
    raw, head, _tail = raw_chunk(body["url"], srv.token, 4 << 20, 100, len(data))
    try:
        raw.send(head + data[100 : 100 + sent])  # then nothing more
        if sent > 1 << 20:  # a streamed body: its writer, hasher and syncer run
            wait_until(lambda: len(body_threads()) == 3, "the body's threads")
        assert raw.response() == (408, {"detail": "Request body timed out"})
        assert read_to_close(raw) == b""  # and the connection is closed
    finally:
        raw.close()
    wait_until(lambda: not srv.backend.sessions.is_writing(body["id"]), "the lock released")
    wait_until(lambda: not body_threads(), "the body's threads to end")
    assert client.get(body["url"], headers=auth(srv.token)).json()["offset"] == 100
    assert (srv.root / "files" / body["id"]).stat().st_size == 100  # nothing half-written
    # The client's next attempt at the same offset goes through.
    final = upload_rest(client, srv, body["url"], data, 100)
    assert final["status"] == 2
    assert (srv.root / "files" / body["id"]).read_bytes() == data


def test_a_stalled_first_chunk_leaves_no_file(make_server: Any) -> None:
    srv = make_server(prefix="/api", body_timeout=0.5)
    raw, head, _tail = raw_chunk(srv.url + "/chunked_upload/", srv.token, 3 << 20, 0, 3 << 20)
    try:
        raw.send(head + os.urandom(2 << 20))
        assert raw.response() == (408, {"detail": "Request body timed out"})
    finally:
        raw.close()
    wait_until(lambda: not body_threads(), "the body's threads to end")
    assert list((srv.root / "files").iterdir()) == []


def test_a_slow_body_that_keeps_sending_is_not_cut(make_server: Any) -> None:
    # The limit is on silence, not on the whole body: pieces 0.3 s apart with a 1 s limit.
    srv = make_server(prefix="/api", body_timeout=1.0)
    data = b"s" * 4000
    raw, head, tail = raw_chunk(srv.url + "/chunked_upload/", srv.token, len(data), 0, len(data))
    try:
        raw.send(head)
        for start in range(0, len(data), 1000):
            time.sleep(0.3)  # the client's pace (what is tested), not a wait for the server
            raw.send(data[start : start + 1000])
        raw.send(tail)
        status, body = raw.response()
    finally:
        raw.close()
    assert (status, body["offset"]) == (200, len(data))


def test_body_timeout_must_be_positive(tmp_path: Any) -> None:
    from synapse_tui.server import ServerConfig

    for bad in (0, -1.0):
        with pytest.raises(ValueError, match="body_timeout"):
            ServerConfig(root=tmp_path, tokens=["t"], body_timeout=bad)


def test_serve_body_timeout_option(tmp_path: Any) -> None:
    import re

    from tests.server.test_cli import parse, serve, stop

    assert parse().body_timeout == 60.0
    assert parse("--body-timeout", "2m").body_timeout == 120.0
    with pytest.raises(SystemExit):
        parse("--body-timeout", "0")
    proc = serve(tmp_path, "--token", "t", "--body-timeout", "0.5")
    try:
        assert proc.stdout is not None
        url = re.search(r" at (http://\S+) ", proc.stdout.readline())
        assert url is not None
        raw, head, _tail = raw_chunk(url.group(1) + "/chunked_upload/", "t", 100, 0, 100)
        try:
            raw.send(head + b"x" * 10)
            assert raw.response() == (408, {"detail": "Request body timed out"})
        finally:
            raw.close()
    finally:
        stop(proc)


def user_rows(srv: EmbeddedServer) -> int:
    with contextlib.closing(sqlite3.connect(srv.root / "uploads.sqlite3")) as db:
        (count,) = db.execute("SELECT count(*) FROM users").fetchone()
    return int(count)


def tenant(srv: EmbeddedServer, name: str) -> dict[str, str]:
    return {**auth(srv.token), "Synapse-Tenant": name}


def test_tenant_headers_that_store_nothing_make_no_rows(
    embedded_server: EmbeddedServer, client: httpx.Client
) -> None:
    srv = embedded_server
    before = user_rows(srv)
    foreign = put(client, srv.url + "/chunked_upload/", DATA[:10], token=srv.token).json()
    for i in range(300):
        h = tenant(srv, f"t{i}")
        assert client.get(srv.url + "/chunked_upload/", headers=h).json() == []
        assert client.head(srv.url + "/chunked_upload/", headers=h).status_code == 200
        assert client.get(foreign["url"], headers=h).status_code == 404
        r = client.post(foreign["url"], data={"md5": md5(DATA[:10])}, headers=h)
        assert r.status_code == 404
        assert client.get(srv.url + "/data_units/", headers=h).json()["results"] == []
        head, _, _ = form_body({"filename": "f"}, None)  # no file part
        r = client.put(srv.url + "/chunked_upload/", content=head,
                       headers={**h, "Content-Range": "bytes 0-9/10",
                                "Content-Type": CONTENT_TYPE})  # fmt: skip
        assert r.status_code == 400  # refused before storing: still no row
    assert user_rows(srv) == before
    assert len(srv.backend.store._users) <= before  # nothing cached for them either


def test_tenants_that_store_get_rows_and_the_cache_stays_bounded(
    embedded_server: EmbeddedServer, client: httpx.Client
) -> None:
    srv = embedded_server
    srv.backend.store._users.size = 8
    before = user_rows(srv)
    ids: dict[str, str] = {}
    for i in range(30):
        name = f"t{i}"
        r = client.post(srv.url + "/chunked_upload/", headers=tenant(srv, name),
                        data={"filename": name, "md5": md5(name.encode())},
                        files={"file": (name, name.encode())})  # fmt: skip
        assert r.status_code == 200, r.text
        ids[name] = r.json()["id"]
        assert len(srv.backend.store._users) <= 8
    assert user_rows(srv) == before + 30
    # Evicted from the cache, each tenant still sees exactly its own upload.
    for name, upload_id in ids.items():
        listed = client.get(srv.url + "/chunked_upload/", headers=tenant(srv, name)).json()
        assert [u["id"] for u in listed] == [upload_id]
    assert client.get(srv.url + "/chunked_upload/", headers=auth(srv.token)).json() == []


def multipart(parts: list[tuple[str, bytes]]) -> bytes:
    """A form of (part head, content) pairs with the helpers' boundary."""
    body = b"".join(
        b"--" + BOUNDARY.encode() + b"\r\n" + head.encode() + b"\r\n\r\n" + content + b"\r\n"
        for head, content in parts
    )
    return body + b"--" + BOUNDARY.encode() + b"--\r\n"


FILE_HEAD = 'Content-Disposition: form-data; name="file"; filename="f"'
NAME_HEAD = 'Content-Disposition: form-data; name="filename"'


@pytest.mark.parametrize("shape", ["streamed", "small"])
def test_form_field_counts_and_part_heads_are_capped(
    embedded_server: EmbeddedServer, client: httpx.Client, shape: str
) -> None:
    srv = embedded_server
    data = os.urandom((2 << 20) if shape == "streamed" else 1000)
    headers = {**auth(srv.token), "Content-Type": CONTENT_TYPE,
               "Content-Range": f"bytes 0-{len(data) - 1}/{len(data)}"}  # fmt: skip
    long_head = FILE_HEAD + "\r\nX-Pad: " + "p" * (64 << 10)
    many = [(f'Content-Disposition: form-data; name="f{i}"', b"v") for i in range(100)]
    cases = {
        "header size": [(NAME_HEAD, b"f"), (long_head, data)],  # python-multipart's own cap
        "Too many form fields": [(NAME_HEAD, b"f"), *many, (FILE_HEAD, data)],
    }
    for detail, parts in cases.items():
        r = client.put(srv.url + "/chunked_upload/", content=multipart(parts), headers=headers)
        assert r.status_code == 400 and detail in r.json()["detail"], r.text
    fine = multipart([(NAME_HEAD, b"f"), *many[:50], (FILE_HEAD, data)])
    r = client.put(srv.url + "/chunked_upload/", content=fine, headers=headers)
    assert r.status_code == 200, r.text  # within the caps
    assert list((srv.root / "files").iterdir()) == [srv.root / "files" / r.json()["id"]]


def test_finalize_body_is_capped_whatever_its_type(
    embedded_server: EmbeddedServer, client: httpx.Client
) -> None:
    srv = embedded_server
    body = put(client, srv.url + "/chunked_upload/", DATA, token=srv.token).json()
    form = multipart([('Content-Disposition: form-data; name="md5"', md5(DATA).encode()),
                      (FILE_HEAD, bytes(2 << 20))])  # fmt: skip
    r = client.post(body["url"], content=form,
                    headers={**auth(srv.token), "Content-Type": CONTENT_TYPE})  # fmt: skip
    assert (r.status_code, r.json()) == (413, {"detail": "Request body is too large"})
    r = client.post(body["url"], data={"md5": md5(DATA)}, headers=auth(srv.token))
    assert r.json()["status"] == 2


def test_a_new_tenant_can_store_through_data_files_first(
    embedded_server: EmbeddedServer, client: httpx.Client
) -> None:
    """The first thing a new owner stores may be the SDK's direct data file: its row is made
    then (without it the upload would belong to nobody and fail)."""
    srv = embedded_server
    h = tenant(srv, "fresh")
    before = user_rows(srv)
    r = client.post(srv.url + "/data_files/", files={"file": ("a.bin", b"abc")}, headers=h)
    assert r.status_code == 201, r.text
    assert user_rows(srv) == before + 1
    body = r.json()
    assert (
        client.get(srv.url + "/chunked_upload/", headers=h).json()[0]["id"]
        == (body["chunked_upload"])
    )
