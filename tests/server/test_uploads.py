"""End-to-end behaviour of the embedded backend: uploads, downloads, locking, expiry, layout."""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Callable

import httpx

from tests.harness.embedded import EmbeddedServer
from tests.server.helpers import auth, md5, put, raw_chunk, upload, upload_rest, wait_until

MiB = 1 << 20


def test_multi_chunk_upload_then_download(
    embedded_server: EmbeddedServer, client: httpx.Client
) -> None:
    srv = embedded_server
    data = os.urandom(3 * MiB + 12345)
    done = upload(client, srv.url, data, token=srv.token, chunk=MiB, filename="photo.jpg")
    assert done["status"] == 2 and done["offset"] == done["size"] == len(data)
    assert done["checksum"] == md5(data)
    assert done["completed_at"] and done["expires_at"] is None
    assert done["url"] == f"{srv.url}/chunked_upload/{done['id']}/"
    assert done["url"].startswith("http://127.0.0.1:") and "/api/" in done["url"]
    got = client.get(done["file"], headers=auth(srv.token))
    assert got.status_code == 200 and got.content == data
    assert 'filename="photo.jpg"' in got.headers["content-disposition"]
    again = client.get(done["url"], headers=auth(srv.token)).json()
    assert again == done
    listed = client.get(srv.url + "/chunked_upload/", headers=auth(srv.token)).json()
    assert [u["id"] for u in listed] == [done["id"]]


def test_json_of_an_upload_in_progress(
    embedded_server: EmbeddedServer, client: httpx.Client
) -> None:
    srv = embedded_server
    r = put(client, srv.url + "/chunked_upload/", b"abc", token=srv.token, total=10)
    body = r.json()
    assert set(body) >= {"id", "url", "file", "filename", "offset", "created_at", "status",
                         "completed_at", "user", "size", "checksum", "expires_at"}  # fmt: skip
    assert (body["offset"], body["size"], body["status"]) == (3, 10, 1)
    assert body["checksum"] is None and body["completed_at"] is None
    assert body["created_at"].endswith("Z") and body["expires_at"].endswith("Z")
    assert client.get(body["file"], headers=auth(srv.token)).status_code == 404


def test_whole_file_post(embedded_server: EmbeddedServer, client: httpx.Client) -> None:
    srv = embedded_server
    data = os.urandom(2 * MiB + 3)
    r = client.post(
        srv.url + "/chunked_upload/",
        data={"filename": "whole.bin", "md5": md5(data)},
        files={"file": ("whole.bin", data)},
        headers=auth(srv.token),
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["status"], body["size"], body["offset"], body["checksum"]) == (
        2, len(data), len(data), md5(data),
    )  # fmt: skip
    assert client.get(body["file"], headers=auth(srv.token)).content == data


TRICKY_NAMES = ["../../etc/passwd", "/etc/passwd", "..\\..\\boot.ini", "a/../../b", "\u202e.exe"]


def test_filenames_are_only_metadata(embedded_server: EmbeddedServer, client: httpx.Client) -> None:
    srv = embedded_server
    outside = srv.root.parent
    before = set(outside.rglob("*"))  # a set: the folder holds every test's files so far
    ids = []
    for name in TRICKY_NAMES:
        data = b"traversal attempt " + name.encode()
        done = upload(client, srv.url, data, token=srv.token, chunk=len(data), filename=name)
        assert done["filename"] == name
        assert (srv.root / "files" / done["id"]).read_bytes() == data
        download = client.get(done["file"], headers=auth(srv.token))
        assert download.content == data
        assert "/" not in download.headers["content-disposition"].split("filename", 1)[1]
        ids.append(done["id"])
    assert sorted(p.name for p in (srv.root / "files").iterdir()) == sorted(ids)
    created = [p for p in outside.rglob("*") if p not in before]
    assert all(p.is_relative_to(srv.root) for p in created), created


def test_second_writer_is_refused_while_the_first_streams(
    embedded_server: EmbeddedServer, client: httpx.Client
) -> None:
    """Two PUTs at one offset: the one that arrives mid-body of the other gets 409."""
    srv = embedded_server
    data = os.urandom(4 * MiB)
    first = put(client, srv.url + "/chunked_upload/", data[:MiB], token=srv.token, total=len(data))
    url, upload_id = first.json()["url"], first.json()["id"]
    slow, head, tail = raw_chunk(url, srv.token, 2 * MiB, MiB, len(data))
    try:
        slow.send(head + data[MiB : MiB + MiB // 2])
        wait_until(lambda: srv.backend.sessions.is_writing(upload_id), "the first PUT to lock")
        rival = put(client, url, b"X" * (2 * MiB), token=srv.token, start=MiB, total=len(data))
        assert rival.status_code == 409
        assert rival.json() == {"detail": "Another request is writing to this upload"}
        slow.send(data[MiB + MiB // 2 : 3 * MiB] + tail)
        status, body = slow.response()
    finally:
        slow.close()
    assert status == 200 and body["offset"] == 3 * MiB
    late = put(client, url, b"X" * (2 * MiB), token=srv.token, start=MiB, total=len(data))
    assert late.status_code == 400 and late.json()["expected_offset"] == 3 * MiB
    done = upload_rest(client, srv, url, data, 3 * MiB)
    assert (srv.root / "files" / upload_id).read_bytes() == data
    assert done["checksum"] == md5(data)


def test_racing_puts_exactly_one_wins(embedded_server: EmbeddedServer) -> None:
    srv = embedded_server
    data = os.urandom(3 * MiB)
    with httpx.Client(timeout=30) as c:
        first = put(c, srv.url + "/chunked_upload/", data[:MiB], token=srv.token, total=len(data))
    url = first.json()["url"]
    chunks = [data[MiB : 2 * MiB], b"A" * MiB, b"B" * MiB, b"C" * MiB]
    results: dict[int, httpx.Response] = {}
    gate = threading.Barrier(len(chunks))

    def racer(i: int) -> None:
        with httpx.Client(timeout=30) as c:
            gate.wait()
            results[i] = put(c, url, chunks[i], token=srv.token, start=MiB, total=len(data))

    threads = [threading.Thread(target=racer, args=(i,)) for i in range(len(chunks))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [i for i, r in results.items() if r.status_code == 200]
    assert len(winners) == 1, {i: (r.status_code, r.text) for i, r in results.items()}
    assert all(r.status_code in (400, 409) for i, r in results.items() if i != winners[0])
    stored = (srv.root / "files" / first.json()["id"]).read_bytes()
    assert stored == data[:MiB] + chunks[winners[0]]


def test_client_disconnect_mid_body_keeps_the_offset(
    embedded_server: EmbeddedServer, client: httpx.Client
) -> None:
    srv = embedded_server
    data = os.urandom(5 * MiB)
    first = put(client, srv.url + "/chunked_upload/", data[:MiB], token=srv.token, total=len(data))
    url, upload_id = first.json()["url"], first.json()["id"]
    path = srv.root / "files" / upload_id
    cut, head, _tail = raw_chunk(url, srv.token, 3 * MiB, MiB, len(data))
    cut.send(head + data[MiB : MiB + 2 * MiB + 1000])
    wait_until(lambda: path.stat().st_size > MiB, "part of the body to reach the disk")
    cut.abort()
    wait_until(lambda: not srv.backend.sessions.is_writing(upload_id), "the writer to give up")
    assert client.get(url, headers=auth(srv.token)).json()["offset"] == MiB
    assert path.stat().st_size == MiB
    done = upload_rest(client, srv, url, data, MiB)
    assert done["checksum"] == md5(data) and path.read_bytes() == data


def test_expiry_counts_from_the_last_chunk(
    embedded_server: EmbeddedServer, client: httpx.Client
) -> None:
    srv = embedded_server
    life = srv.config.expire_after
    data = os.urandom(3000)
    url = srv.url + "/chunked_upload/"
    for start in range(0, 3000, 1000):
        r = put(client, url, data[start : start + 1000], token=srv.token, start=start, total=3000)
        assert r.status_code == 200, r.text
        url = r.json()["url"]
        srv.clock.advance(0.75 * life)  # 2.25 lives since creation by the end: still alive
    r = client.post(url, data={"md5": md5(data)}, headers=auth(srv.token))
    assert r.status_code == 200, r.text
    srv.clock.advance(10 * life)  # complete uploads never expire
    assert client.get(r.json()["file"], headers=auth(srv.token)).content == data


def test_expired_uploads_are_swept(
    make_server: Callable[..., EmbeddedServer], client: httpx.Client
) -> None:
    srv = make_server(expire_after=2.0)  # sweeps every second of real time
    r = put(client, srv.url + "/chunked_upload/", b"abc", token=srv.token, total=10)
    path = srv.root / "files" / r.json()["id"]
    assert path.exists()
    srv.clock.advance(2.5)
    wait_until(lambda: not path.exists(), "the sweep to delete the expired bytes")
    state = client.get(r.json()["url"], headers=auth(srv.token))
    assert state.status_code == 200 and state.json()["status"] == 1
    put_again = put(client, r.json()["url"], b"def", token=srv.token, start=3, total=10)
    assert put_again.status_code == 410
    srv.clock.advance(5.0)  # one more lifetime after expiry: the record is forgotten too
    wait_until(
        lambda: client.get(r.json()["url"], headers=auth(srv.token)).status_code == 404,
        "the sweep to forget the expired record",
    )


def test_no_prefix_and_prefix_routing(
    make_server: Callable[..., EmbeddedServer], client: httpx.Client
) -> None:
    bare = make_server()
    assert bare.url.count("/") == 2
    body = upload(client, bare.url, b"hello", token=bare.token, chunk=5)
    assert body["url"] == f"{bare.url}/chunked_upload/{body['id']}/"
    prefixed = make_server(prefix="/api/")
    assert prefixed.url.endswith("/api")
    r = client.get(
        prefixed.url.removesuffix("/api") + "/chunked_upload/", headers=auth(prefixed.token)
    )
    assert r.status_code == 404
    assert client.get(prefixed.url + "/chunked_upload/", headers=auth(prefixed.token)).json() == []


def test_storage_is_private_and_holds_no_token(
    embedded_server: EmbeddedServer, client: httpx.Client
) -> None:
    srv = embedded_server
    done = upload(client, srv.url, b"secret bytes", token=srv.token, chunk=100)
    assert stat.S_IMODE(srv.root.stat().st_mode) == 0o700
    assert stat.S_IMODE((srv.root / "files").stat().st_mode) == 0o700
    assert stat.S_IMODE((srv.root / "files" / done["id"]).stat().st_mode) == 0o600
    for db in srv.root.glob("uploads.sqlite3*"):
        assert stat.S_IMODE(db.stat().st_mode) == 0o600
        assert srv.token.encode() not in db.read_bytes()
