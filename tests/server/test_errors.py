"""The error table of docs/protocol.md, row by row, against the embedded backend and its fixes."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from synapse_tui.server import store as store_module
from tests.harness.embedded import EmbeddedServer
from tests.server.helpers import auth, md5, put, upload

DATA = bytes(range(256)) * 40  # 10240 bytes


def first_chunk(client: httpx.Client, srv: EmbeddedServer, size: int = 4096) -> dict:
    r = put(client, srv.url + "/chunked_upload/", DATA[:size], token=srv.token, total=len(DATA))
    assert r.status_code == 200, r.text
    return r.json()


def state(client: httpx.Client, srv: EmbeddedServer, upload_id: str) -> dict:
    r = client.get(f"{srv.url}/chunked_upload/{upload_id}/", headers=auth(srv.token))
    assert r.status_code == 200
    return r.json()


def stored_size(srv: EmbeddedServer, upload_id: str) -> int:
    return (srv.root / "files" / upload_id).stat().st_size


def test_offset_mismatch(embedded_server: EmbeddedServer, client: httpx.Client) -> None:
    srv = embedded_server
    body = first_chunk(client, srv)
    for start in (0, 4000, 5000):
        r = put(client, body["url"], DATA[start : start + 100], token=srv.token, start=start,
                total=len(DATA))  # fmt: skip
        assert r.status_code == 400
        assert r.json() == {
            "detail": "Offsets do not match",
            "expected_offset": 4096,
            "provided_offset": start,
        }
    assert state(client, srv, body["id"])["offset"] == 4096
    assert stored_size(srv, body["id"]) == 4096


def test_first_chunk_must_start_at_zero(
    embedded_server: EmbeddedServer, client: httpx.Client
) -> None:
    srv = embedded_server
    r = put(client, srv.url + "/chunked_upload/", DATA[:10], token=srv.token, start=5, total=100)
    assert r.status_code == 400
    assert r.json()["expected_offset"] == 0 and r.json()["provided_offset"] == 5
    assert list((srv.root / "files").iterdir()) == []


BAD_RANGES = [None, "", "bytes 0-9", "bytes=0-9/10", "items 0-9/10", "bytes a-9/10",
              "bytes 0-9/*", "bytes 5-3/10", "bytes -1-9/10", "bytes 0-9/10/10"]  # fmt: skip


def test_bad_content_range(embedded_server: EmbeddedServer, client: httpx.Client) -> None:
    srv = embedded_server
    for content_range in BAD_RANGES:
        headers = auth(srv.token)
        if content_range is not None:
            headers["Content-Range"] = content_range
        r = client.put(
            srv.url + "/chunked_upload/",
            data={"filename": "a"},
            files={"file": ("a", DATA[:10])},
            headers=headers,
        )
        assert (r.status_code, r.json()) == (400, {"detail": "Error in request headers"}), (
            content_range
        )


def test_chunk_length_differs_from_range(
    embedded_server: EmbeddedServer, client: httpx.Client
) -> None:
    srv = embedded_server
    body = first_chunk(client, srv)
    for actual in (3, 7, 0):
        r = put(client, body["url"], DATA[4096 : 4096 + actual], token=srv.token,
                content_range=f"bytes 4096-4100/{len(DATA)}")  # fmt: skip
        assert r.status_code == 400
        assert r.json() == {
            "detail": f"File size doesn't match headers: file size is {actual} but 5 reported"
        }
        assert state(client, srv, body["id"])["offset"] == 4096
        assert stored_size(srv, body["id"]) == 4096


def test_chunk_length_differs_on_create_stores_nothing(
    embedded_server: EmbeddedServer, client: httpx.Client
) -> None:
    srv = embedded_server
    r = put(client, srv.url + "/chunked_upload/", DATA[:10], token=srv.token,
            content_range="bytes 0-19/100")  # fmt: skip
    assert r.status_code == 400
    assert r.json()["detail"].startswith("File size doesn't match headers")
    assert client.get(srv.url + "/chunked_upload/", headers=auth(srv.token)).json() == []
    assert list((srv.root / "files").iterdir()) == []


def test_end_must_be_below_total(embedded_server: EmbeddedServer, client: httpx.Client) -> None:
    """drf accepts `bytes 0-5/5` (six bytes of a five-byte file); this backend does not."""
    srv = embedded_server
    for end in (5, 9):
        r = put(client, srv.url + "/chunked_upload/", DATA[: end + 1], token=srv.token,
                content_range=f"bytes 0-{end}/5")  # fmt: skip
        assert r.status_code == 400
        assert r.json() == {"detail": "End of chunk exceeds reported total (5 bytes)"}


def test_total_over_the_limit_is_413(
    make_server: Callable[..., EmbeddedServer], client: httpx.Client
) -> None:
    srv = make_server(max_bytes=1000)
    r = put(client, srv.url + "/chunked_upload/", DATA[:10], token=srv.token, total=1001)
    assert r.status_code == 413
    assert r.json() == {"detail": "Size of file exceeds the limit (1000 bytes)"}
    ok = put(client, srv.url + "/chunked_upload/", DATA[:10], token=srv.token, total=1000)
    assert ok.status_code == 200
    whole = client.post(
        srv.url + "/chunked_upload/",
        data={"filename": "w", "md5": md5(DATA[:1001])},
        files={"file": ("w", DATA[:1001])},
        headers=auth(srv.token),
    )
    assert whole.status_code == 413
    assert whole.json() == {"detail": "Size of file exceeds the limit (1000 bytes)"}
    listed = client.get(srv.url + "/chunked_upload/", headers=auth(srv.token)).json()
    assert [u["id"] for u in listed] == [ok.json()["id"]]


def test_no_file_part(embedded_server: EmbeddedServer, client: httpx.Client) -> None:
    srv = embedded_server
    expected = {"detail": "No chunk file was submitted"}
    r = put(client, srv.url + "/chunked_upload/", None, token=srv.token,
            content_range="bytes 0-9/10")  # fmt: skip
    assert (r.status_code, r.json()) == (400, expected)
    body = first_chunk(client, srv)
    r = put(client, body["url"], None, token=srv.token,
            content_range=f"bytes 4096-4105/{len(DATA)}")  # fmt: skip
    assert (r.status_code, r.json()) == (400, expected)
    r = client.post(srv.url + "/chunked_upload/", data={"filename": "x", "md5": md5(b"")},
                    headers=auth(srv.token))  # fmt: skip
    assert (r.status_code, r.json()) == (400, expected)
    headers = {**auth(srv.token), "Content-Range": f"bytes 4096-4105/{len(DATA)}"}
    r = client.put(body["url"], json={"filename": "x"}, headers=headers)
    assert (r.status_code, r.json()) == (400, expected)


def test_empty_files(embedded_server: EmbeddedServer, client: httpx.Client) -> None:
    """drf refuses empty files; here: whole-file POST, or `bytes */0` (alias `bytes 0-0/0`)."""
    srv = embedded_server
    r = client.post(
        srv.url + "/chunked_upload/",
        data={"filename": "empty.txt", "md5": md5(b"")},
        files={"file": ("empty.txt", b"")},
        headers=auth(srv.token),
    )
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["size"], r.json()["checksum"]) == (2, 0, md5(b""))
    assert client.get(r.json()["file"], headers=auth(srv.token)).content == b""
    for content_range in ("bytes */0", "bytes 0-0/0"):
        r = put(client, srv.url + "/chunked_upload/", b"", token=srv.token,
                content_range=content_range)  # fmt: skip
        assert r.status_code == 200, r.text
        assert (r.json()["offset"], r.json()["size"], r.json()["status"]) == (0, 0, 1)
        done = client.post(r.json()["url"], data={"md5": md5(b"")}, headers=auth(srv.token))
        assert done.status_code == 200 and done.json()["status"] == 2
    # An empty part where the range announces bytes is a size mismatch, as in drf.
    r = put(client, srv.url + "/chunked_upload/", b"", token=srv.token,
            content_range="bytes 0-9/10")  # fmt: skip
    assert r.status_code == 400
    assert r.json() == {"detail": "File size doesn't match headers: file size is 0 but 10 reported"}
    r = put(client, srv.url + "/chunked_upload/", b"", token=srv.token,
            content_range="bytes */5")  # fmt: skip
    assert r.json() == {"detail": "Error in request headers"}


def test_filename_validation(embedded_server: EmbeddedServer, client: httpx.Client) -> None:
    srv = embedded_server
    url = srv.url + "/chunked_upload/"
    cases = {
        "x" * 256: "Ensure this field has no more than 255 characters.",
        "   ": "This field may not be blank.",
        None: "This field is required.",
    }
    for name, message in cases.items():
        r = put(client, url, DATA[:10], token=srv.token, filename=name)
        assert r.status_code == 400
        assert r.json() == {"detail": {"filename": [message]}}
    assert list((srv.root / "files").iterdir()) == []
    r = put(client, url, DATA[:10], token=srv.token, filename="é" * 255)
    assert r.status_code == 200 and r.json()["filename"] == "é" * 255


def test_filename_after_the_file_part(
    embedded_server: EmbeddedServer, client: httpx.Client
) -> None:
    srv = embedded_server
    from tests.server.helpers import CONTENT_TYPE, form_body

    head, file, tail = form_body({"filename": "late.bin"}, DATA[:100], file_first=True)
    r = client.put(
        srv.url + "/chunked_upload/",
        content=head + file + tail,
        headers={
            **auth(srv.token),
            "Content-Type": CONTENT_TYPE,
            "Content-Range": "bytes 0-99/100",
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["filename"] == "late.bin"


def test_md5_missing_or_wrong(embedded_server: EmbeddedServer, client: httpx.Client) -> None:
    srv = embedded_server
    body = upload(client, srv.url, DATA, token=srv.token, chunk=4096, finalize=False)
    for payload in ({}, {"md5": ""}):
        r = client.post(body["url"], data=payload, headers=auth(srv.token))
        assert (r.status_code, r.json()) == (400, {"detail": "Checksum of type 'md5' is required"})
    r = client.post(body["url"], json={"md5": md5(DATA[:-1])}, headers=auth(srv.token))
    assert (r.status_code, r.json()) == (400, {"detail": "checksum does not match"})
    assert state(client, srv, body["id"])["status"] == 1
    # JSON (as the SDK sends it), urlencoded and multipart bodies all carry the md5.
    r = client.post(body["url"], json={"md5": md5(DATA).upper()}, headers=auth(srv.token))
    assert r.status_code == 200 and r.json()["checksum"] == md5(DATA)


def test_whole_file_post_checks_md5(embedded_server: EmbeddedServer, client: httpx.Client) -> None:
    srv = embedded_server
    url = srv.url + "/chunked_upload/"
    r = client.post(
        url, data={"filename": "w"}, files={"file": ("w", DATA)}, headers=auth(srv.token)
    )
    assert (r.status_code, r.json()) == (400, {"detail": "Checksum of type 'md5' is required"})
    r = client.post(url, data={"filename": "w", "md5": "0" * 32}, files={"file": ("w", DATA)},
                    headers=auth(srv.token))  # fmt: skip
    assert (r.status_code, r.json()) == (400, {"detail": "checksum does not match"})
    assert client.get(url, headers=auth(srv.token)).json() == []
    assert list((srv.root / "files").iterdir()) == []


def test_already_complete(embedded_server: EmbeddedServer, client: httpx.Client) -> None:
    srv = embedded_server
    body = upload(client, srv.url, DATA, token=srv.token, chunk=4096)
    expected = {"detail": 'Upload has already been marked as "complete"'}
    r = client.post(body["url"], data={"md5": md5(DATA)}, headers=auth(srv.token))
    assert (r.status_code, r.json()) == (400, expected)
    r = put(client, body["url"], b"x", token=srv.token, start=len(DATA), total=len(DATA) + 1)
    assert (r.status_code, r.json()) == (400, expected)


def test_finalize_requires_every_byte(
    embedded_server: EmbeddedServer, client: httpx.Client
) -> None:
    """drf finalizes a partial upload if the md5 of the partial bytes is given; not here."""
    srv = embedded_server
    body = first_chunk(client, srv)
    r = client.post(body["url"], data={"md5": md5(DATA[:4096])}, headers=auth(srv.token))
    assert r.status_code == 400
    assert r.json() == {
        "detail": f"Upload is incomplete: 4096 of {len(DATA)} bytes received",
        "offset": 4096,
        "size": len(DATA),
    }


def test_total_is_pinned(embedded_server: EmbeddedServer, client: httpx.Client) -> None:
    srv = embedded_server
    body = first_chunk(client, srv)
    r = put(client, body["url"], DATA[4096:5000], token=srv.token, start=4096, total=99999)
    assert r.status_code == 400
    assert r.json() == {
        "detail": "Total size does not match the upload",
        "expected_total": len(DATA),
        "provided_total": 99999,
    }


def test_expired_upload_is_gone(embedded_server: EmbeddedServer, client: httpx.Client) -> None:
    srv = embedded_server
    body = first_chunk(client, srv)
    srv.clock.advance(srv.config.expire_after + 1)
    r = put(client, body["url"], DATA[4096:], token=srv.token, start=4096)
    assert (r.status_code, r.json()) == (410, {"detail": "Upload has expired"})
    assert not (srv.root / "files" / body["id"]).exists()
    r = client.post(body["url"], data={"md5": md5(DATA)}, headers=auth(srv.token))
    assert (r.status_code, r.json()) == (410, {"detail": "Upload has expired"})


def test_unknown_and_foreign_ids_are_404(
    embedded_server: EmbeddedServer, client: httpx.Client
) -> None:
    srv = embedded_server
    body = upload(client, srv.url, DATA, token=srv.token, chunk=4096, finalize=False)
    other = auth(srv.other_token)
    not_found = {"detail": "Not found."}
    for url in (
        f"{srv.url}/chunked_upload/00000000-0000-4000-8000-000000000000/",
        f"{srv.url}/chunked_upload/not-a-uuid/",
        f"{srv.url}/chunked_upload/..%2F..%2Fetc/",
    ):
        for method in ("GET", "POST", "PUT"):
            headers = {**auth(srv.token), "Content-Range": "bytes 0-0/1"}
            r = client.request(method, url, headers=headers, data={"md5": md5(DATA)})
            assert (r.status_code, r.json()) == (404, not_found), (method, url)
    assert client.get(body["url"], headers=other).status_code == 404
    assert client.post(body["url"], data={"md5": md5(DATA)}, headers=other).status_code == 404
    r = put(client, body["url"], b"x", token=srv.other_token, start=len(DATA), total=len(DATA) + 1)
    assert (r.status_code, r.json()) == (404, not_found)
    assert client.get(body["file"], headers=other).status_code == 404
    assert client.get(srv.url + "/chunked_upload/", headers=other).json() == []
    assert state(client, srv, body["id"])["offset"] == len(DATA)


def test_credentials(embedded_server: EmbeddedServer, client: httpx.Client) -> None:
    srv = embedded_server
    url = srv.url + "/chunked_upload/"
    r = client.get(url)
    assert (r.status_code, r.json()) == (
        401, {"detail": "Authentication credentials were not provided."},
    )  # fmt: skip
    assert r.headers["www-authenticate"] == "Token"
    for headers in (
        {"Synapse-Access-Token": "Token wrong"},
        {"Authorization": "Token wrong"},
        {"Synapse-Access-Token": f"Token {srv.token}x"},
    ):
        r = client.get(url, headers=headers)
        assert (r.status_code, r.json()) == (401, {"detail": "Invalid token."}), headers
    assert client.get(url, headers={"Authorization": "Bearer x"}).status_code == 401
    assert client.get(url, headers={"Authorization": f"Token {srv.token}"}).status_code == 200


def test_tenant_is_part_of_the_identity(
    embedded_server: EmbeddedServer, client: httpx.Client
) -> None:
    srv = embedded_server
    plain = upload(client, srv.url, DATA[:100], token=srv.token, chunk=100, finalize=False)
    tenant = {"Authorization": f"Token {srv.token}", "Synapse-Tenant": "Token acme"}
    assert client.get(plain["url"], headers=tenant).status_code == 404
    assert (
        client.get(plain["url"], headers={"Authorization": f"Token {srv.token}"}).status_code == 200
    )


def test_insufficient_storage(
    embedded_server: EmbeddedServer, client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    srv = embedded_server
    body = first_chunk(client, srv)
    free = len(DATA) - 4096 - 1  # one byte short of what the upload still needs
    monkeypatch.setattr(store_module, "disk_free", lambda _path: free)
    r = put(client, body["url"], DATA[4096:5000], token=srv.token, start=4096, total=len(DATA))
    assert (r.status_code, r.json()) == (507, {"detail": "Insufficient storage"})
    r = put(client, srv.url + "/chunked_upload/", DATA[:10], token=srv.token, total=free + 1)
    assert r.status_code == 507
    r = client.post(srv.url + "/chunked_upload/", data={"filename": "w", "md5": md5(DATA)},
                    files={"file": ("w", DATA)}, headers=auth(srv.token))  # fmt: skip
    assert r.status_code == 507
    monkeypatch.setattr(store_module, "disk_free", lambda _path: free + 1)
    r = put(client, body["url"], DATA[4096:5000], token=srv.token, start=4096, total=len(DATA))
    assert r.status_code == 200


def test_free_space_is_read_at_most_every_half_second(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pathlib import Path

    clock = [100.0]
    reads: list[Path] = []

    class Usage:
        free = 1234

    def usage(path: Path) -> Usage:
        reads.append(path)
        return Usage()

    def now() -> float:
        return clock[0]

    # Seams, not process-wide patches of time.monotonic or shutil: servers run in-process.
    monkeypatch.setattr(store_module, "_free_seen", {})
    root = Path(str(tmp_path))
    assert store_module.disk_free(root, now, usage) == 1234
    clock[0] += 0.4
    Usage.free = 99
    assert store_module.disk_free(root, now, usage) == 1234 and len(reads) == 1  # the same
    clock[0] += 0.2
    assert store_module.disk_free(root, now, usage) == 99 and len(reads) == 2  # read again


def test_the_api_base_follows_the_host_each_request_used(
    embedded_server: EmbeddedServer, client: httpx.Client
) -> None:
    srv = embedded_server
    for host in ("example.test:8080", "127.0.0.1", "example.test:8080"):
        headers = {**auth(srv.token), "Host": host}
        r = client.post(
            srv.url + "/chunked_upload/",
            data={"filename": "h.bin", "md5": md5(b"abc")},
            files={"file": ("h.bin", b"abc")},
            headers=headers,
        )
        assert r.status_code == 200, r.text
        assert r.json()["url"].startswith(f"http://{host}/"), (host, r.json()["url"])


def test_unknown_routes_and_methods(embedded_server: EmbeddedServer, client: httpx.Client) -> None:
    srv = embedded_server
    r = client.get(srv.url + "/nothing/", headers=auth(srv.token))
    assert (r.status_code, r.json()) == (404, {"detail": "Not found."})
    r = client.delete(srv.url + "/chunked_upload/", headers=auth(srv.token))
    assert (r.status_code, r.json()) == (405, {"detail": 'Method "DELETE" not allowed.'})


def test_unexpected_errors_answer_500_json_on_every_route(
    embedded_server: EmbeddedServer, client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # PUT/POST of chunked_upload/ skip Starlette's stack (app._App); GET goes through it.
    # Both answer the unexpected the same way (here: after the body was read), and the
    # server stays up.
    from synapse_tui.server import chunked

    srv = embedded_server
    body = first_chunk(client, srv)

    def broken(*_args: object) -> dict[str, object]:
        raise RuntimeError("boom")

    monkeypatch.setattr(chunked, "render", broken)
    # uvicorn closes a connection after an application error: one client per request.
    with httpx.Client() as c1, httpx.Client() as c2, httpx.Client() as c3:
        answers = [
            put(c1, srv.url + "/chunked_upload/", DATA[:10], token=srv.token, total=10),
            put(c2, body["url"], DATA[4096:4100], token=srv.token, start=4096, total=len(DATA)),
            c3.get(body["url"], headers=auth(srv.token)),
        ]
    for r in answers:
        assert (r.status_code, r.json()) == (500, {"detail": "A server error occurred."})
    monkeypatch.undo()
    assert state(client, srv, body["id"])["offset"] == 4100
