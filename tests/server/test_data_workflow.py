"""The data workflow's safety: owner checks, size caps, bad input, signed URLs, pages, migration."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from synapse_tui.server import bodies
from synapse_tui.server.specs import FileSpec, parse_collection
from tests.harness.embedded import EmbeddedServer
from tests.server.helpers import auth, md5, upload

PHOTOS = "photos:image*:image,label?:data"


@pytest.fixture
def photos(make_server: Callable[..., EmbeddedServer]) -> EmbeddedServer:
    return make_server(prefix="/api", collections=[parse_collection(PHOTOS)])


def direct(
    client: httpx.Client, srv: EmbeddedServer, data: bytes, name: str = "x.png", token: str = ""
) -> httpx.Response:
    """POST data_files/ with a multipart `file`, as the SDK does for files up to 50 MiB."""
    return client.post(srv.url + "/data_files/", files={"file": (name, data)},
                       headers=auth(token or srv.token))  # fmt: skip


def unit_of(checksum: str, **extra: Any) -> dict[str, Any]:
    return {"data_collection": 1, "files": {"image": {"checksum": checksum, "path": "p/x.png"}},
            **extra}  # fmt: skip


def test_direct_data_file_is_streamed_to_disk_and_owned(
    photos: EmbeddedServer, client: httpx.Client
) -> None:
    srv = photos
    data = b"\x89PNG" + bytes(range(256)) * 40
    r = direct(client, srv, data, name="dir/cat.png")
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["checksum"], body["size"], body["file_name_original"]) == (
        md5(data), len(data), "cat.png",
    )  # fmt: skip
    assert (srv.root / "files" / body["chunked_upload"]).read_bytes() == data
    assert client.get(body["file"]).content == data
    # The other user cannot name that upload, nor does the checksum exist for them.
    r = client.post(srv.url + "/data_files/", json={"chunked_upload": body["chunked_upload"]},
                    headers=auth(srv.other_token))  # fmt: skip
    assert r.status_code == 400 and "does not exist" in r.json()["chunked_upload"][0]
    r = client.post(srv.url + "/data_units/", json=unit_of(md5(data)),
                    headers=auth(srv.other_token))  # fmt: skip
    assert r.status_code == 400 and "No data file" in r.json()["files"]["image"][0]
    for token, expected in ((srv.other_token, []), (srv.token, [md5(data)])):
        r = client.post(srv.url + "/data_files/verify_checksums/",
                        json={"checksums": [md5(data)]}, headers=auth(token))  # fmt: skip
        assert r.json()["existing_checksums"] == expected
    assert client.post(srv.url + "/data_files/", files={"file": ("x", b"1")}).status_code == 401


def test_direct_data_file_size_cap_and_missing_file(
    make_server: Callable[..., EmbeddedServer], client: httpx.Client
) -> None:
    srv = make_server(max_bytes=1000, collections=[parse_collection(PHOTOS)])
    before = set((srv.root / "files").iterdir())
    r = direct(client, srv, b"x" * 1001)
    assert r.status_code == 413 and "exceeds the limit" in r.json()["detail"]
    assert direct(client, srv, b"x" * 1000).status_code == 201
    r = client.post(srv.url + "/data_files/", data={"other": "1"}, files={"not_file": ("a", b"1")},
                    headers=auth(srv.token))  # fmt: skip
    assert (r.status_code, r.json()) == (400, {"file": ["No file was submitted."]})
    assert len(set((srv.root / "files").iterdir()) - before) == 1  # only the accepted one


def test_json_bodies_are_capped(
    photos: EmbeddedServer, client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    srv = photos
    monkeypatch.setattr(bodies, "JSON_LIMIT", 4096)
    big = b'{"checksums": ["' + b"a" * 5000 + b'"]}'
    for path in ("/data_units/", "/data_files/", "/data_files/verify_checksums/"):
        r = client.post(srv.url + path, content=big, headers=auth(srv.token))
        assert r.status_code == 413, path
        # Without a Content-Length (chunked encoding) the count while streaming refuses it.
        r = client.post(srv.url + path, content=iter([big[:3000], big[3000:]]),
                        headers=auth(srv.token))  # fmt: skip
        assert r.status_code == 413, path


def test_bad_input_gets_drf_errors(photos: EmbeddedServer, client: httpx.Client) -> None:
    srv = photos
    done = upload(client, srv.url, b"\x89PNG image", token=srv.token, chunk=100)

    def post(path: str, body: Any = None, content: bytes | None = None) -> httpx.Response:
        return client.post(srv.url + path, json=body, content=content, headers=auth(srv.token))

    for path in ("/data_units/", "/data_files/", "/data_files/verify_checksums/"):
        r = post(path, content=b"{nope")
        assert r.status_code == 400 and r.json()["detail"].startswith("JSON parse error")
        r = post(path, content=b"[" * 100_000 + b"]" * 100_000)  # too deep for the parser
        assert r.status_code == 400
    r = post("/data_files/", {"chunked_upload": ["x"]})
    assert r.json() == {"chunked_upload": ["Incorrect type. Expected pk value."]}
    r = post("/data_files/verify_checksums/", {"checksums": "abc"})
    assert r.status_code == 400 and "Expected a list" in r.json()["checksums"][0]
    r = post("/data_files/verify_checksums/", {"checksums": ["ok", 5, ""]})
    assert r.json() == {
        "checksums": {"1": ["Not a valid checksum."], "2": ["Not a valid checksum."]}
    }
    r = post("/data_files/verify_checksums/", {"checksums": ["a"] * 10_001})
    assert r.status_code == 400 and "no more than" in r.json()["checksums"][0]
    assert post("/data_files/", {"chunked_upload": done["id"]}).status_code == 201
    good = unit_of(done["checksum"])
    r = post("/data_units/", {**good, "groups": "batch-01"})
    assert r.status_code == 400 and "Expected a list" in r.json()["groups"][0]
    r = post("/data_units/", {**good, "groups": ["ok", 3]})
    assert r.status_code == 400 and "groups" in r.json()
    r = post("/data_units/", {**good, "data_collection": "1"})
    assert r.json() == {"data_collection": ['Invalid pk "1" - object does not exist.']}
    r = post("/data_units/", {**good, "meta": [1]})
    assert r.json() == {"meta": ["Expected a dictionary."]}
    r = post("/data_units/", {**good, "files": {"image": {"checksum": 5}}})
    assert r.json() == {"files": {"image": ["checksum: This field is required."]}}
    r = post("/data_units/", [good] * 10_001)
    assert r.status_code == 400 and "at most" in r.json()["non_field_errors"][0]
    assert client.get(srv.url + "/data_units/", headers=auth(srv.token)).json()["count"] == 0


def test_signed_urls_open_one_file_until_they_expire(
    photos: EmbeddedServer, client: httpx.Client
) -> None:
    srv = photos
    first = direct(client, srv, b"\x89PNG first").json()
    second = direct(client, srv, b"\x89PNG second").json()
    url = httpx.URL(first["file"])
    assert client.get(url).content == b"\x89PNG first"
    signature = url.params["signature"]
    tampered = url.copy_set_param(
        "signature", signature[:-1] + ("0" if signature[-1] != "0" else "1")
    )
    assert client.get(tampered).status_code == 403
    later = url.copy_set_param("expires", str(int(url.params["expires"]) + 3600))
    assert client.get(later).status_code == 403
    other = str(url).replace(f"/data_files/{first['id']}/", f"/data_files/{second['id']}/")
    assert client.get(other).status_code == 403  # the signature opens its own file only
    assert client.get(url.copy_remove_param("signature")).status_code == 403
    signer = srv.backend.collections.signer
    missing = signer.url(srv.url, 999, "x", srv.clock())
    assert client.get(missing).status_code == 404
    srv.clock.advance(signer.ttl + 120)
    assert client.get(url).status_code == 403  # expired


def test_secret_is_private_and_survives_a_restart(
    make_server: Callable[..., EmbeddedServer], client: httpx.Client
) -> None:
    srv = make_server(collections=[parse_collection(PHOTOS)])
    url = direct(client, srv, b"\x89PNG kept").json()["file"]
    secret = srv.root / "secret"
    assert secret.stat().st_mode & 0o777 == 0o600 and len(secret.read_bytes()) == 32
    srv.server.stop()
    again = make_server(root=srv.root, collections=[parse_collection(PHOTOS)])
    assert client.get(url.replace(srv.url, again.url)).content == b"\x89PNG kept"


def test_units_are_paged_like_drf(photos: EmbeddedServer, client: httpx.Client) -> None:
    srv = photos
    made = direct(client, srv, b"\x89PNG unit").json()
    units = [unit_of(made["checksum"], meta={"i": i}) for i in range(5)]
    r = client.post(srv.url + "/data_units/", json=units, headers=auth(srv.token))
    assert r.status_code == 201 and len(r.json()) == 5
    h = auth(srv.token)
    first = client.get(srv.url + "/data_units/?data_collection=1&page_size=2", headers=h).json()
    assert first["count"] == 5 and [u["meta"]["i"] for u in first["results"]] == [0, 1]
    assert first["previous"] is None
    second = client.get(first["next"], headers=h).json()
    assert [u["meta"]["i"] for u in second["results"]] == [2, 3]
    last = client.get(second["next"], headers=h).json()
    assert [u["meta"]["i"] for u in last["results"]] == [4] and last["next"] is None
    assert client.get(last["previous"], headers=h).json() == second
    assert "page=" not in client.get(second["previous"], headers=h).request.url.query.decode()
    for bad in ("page=0", "page=x", "page=4&page_size=2"):
        r = client.get(srv.url + f"/data_units/?{bad}", headers=h)
        assert (r.status_code, r.json()) == (404, {"detail": "Invalid page."})
    huge = client.get(srv.url + "/data_units/?page_size=100000", headers=h).json()
    assert huge["count"] == 5 and huge["next"] is None  # clamped, not refused
    r = client.get(srv.url + "/data_units/?data_collection=x", headers=h)
    assert r.status_code == 400
    one = first["results"][0]
    assert client.get(srv.url + f"/data_units/{one['id']}/", headers=h).json() == one
    assert (
        client.get(srv.url + f"/data_units/{one['id']}/", headers=auth(srv.other_token)).status_code
        == 404
    )
    cols = client.get(srv.url + "/data_collections/?page_size=1&page=1", headers=h).json()
    assert cols["count"] == 1 and cols["next"] is None


def test_old_database_is_migrated(
    make_server: Callable[..., EmbeddedServer], client: httpx.Client
) -> None:
    """A root made before groups and data file ids were kept: its units still read back."""
    srv = make_server(collections=[("images", ["image", "meta"])])
    done = upload(client, srv.url, b"old bytes", token=srv.token, chunk=100, filename="old.jpg")
    client.post(
        srv.url + "/data_files/", json={"chunked_upload": done["id"]}, headers=auth(srv.token)
    )
    srv.server.stop()
    db = sqlite3.connect(srv.root / "uploads.sqlite3")
    db.executescript(
        "DROP TABLE data_units; CREATE TABLE data_units (id INTEGER PRIMARY KEY AUTOINCREMENT,"
        " owner INTEGER NOT NULL REFERENCES users(id), data_collection INTEGER NOT NULL,"
        " files TEXT NOT NULL, meta TEXT NOT NULL, created_at REAL NOT NULL);"
    )
    files = {"image": {"checksum": done["checksum"], "path": "a/old.jpg"}}
    db.execute(  # owner 1: the first token's user
        "INSERT INTO data_units(owner, data_collection, files, meta, created_at)"
        " VALUES (1, 1, ?, '{}', 0)",
        (json.dumps(files),),
    )
    db.commit()
    db.close()
    again = make_server(root=srv.root, collections=[("images", ["image", "meta"])])
    listed = client.get(again.url + "/data_units/", headers=auth(again.token)).json()
    (unit,) = listed["results"]
    assert unit["groups"] == [] and unit["files"]["image"]["file_name_original"] == "old.jpg"
    assert client.get(unit["files"]["image"]["url"]).content == b"old bytes"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("photos:image,label", [FileSpec("image", "image", True, True), FileSpec("label", "data")]),
        (PHOTOS, [FileSpec("image", "image", True, True), FileSpec("label", "data", False)]),
        ("v: clip :video , frame*? :image",
         [FileSpec("clip", "video"), FileSpec("frame", "image", False, True)]),
    ],
)  # fmt: skip
def test_collection_syntax(text: str, expected: list[FileSpec]) -> None:
    assert parse_collection(text)[1] == expected


@pytest.mark.parametrize(
    "text", ["photos", "photos:", ":a", "x:a,a", "x:a*,b*", "x:a:json", "x:a**", "x:*", "x:a b?c"]
)
def test_collection_syntax_rejects(text: str) -> None:
    with pytest.raises(ValueError, match=r"invalid|file type"):
        parse_collection(text)


def test_serve_prints_collection_ids(tmp_path: Path) -> None:
    from tests.server.test_cli import serve, stop

    proc = serve(tmp_path, "--token", "t", "--collection", PHOTOS, "--collection", "docs:pdf")
    assert proc.stdout is not None
    lines = [proc.stdout.readline() for _ in range(3)]
    url = lines[0].split(" at ", 1)[1].split(" ", 1)[0]
    assert httpx.get(url + "/data_collections/", headers=auth("t")).json()["count"] == 2
    stop(proc)  # once it answers: uvicorn handles the Ctrl-C
    assert lines[1].startswith("Data collection 1: photos (image*:image,label?:data)"), lines
    assert lines[2].startswith("Data collection 2: docs (pdf*:data)"), lines


def test_form_fields_are_bounded_in_total(photos: EmbeddedServer, client: httpx.Client) -> None:
    from synapse_tui.server.multipart import MAX_FIELDS_BYTES, FormError, StreamingForm

    form = StreamingForm(b"B", sink=None)
    one = b'--B\r\nContent-Disposition: form-data; name="f%d"\r\n\r\n' + b"x" * 60_000 + b"\r\n"
    with pytest.raises(FormError, match="too large"):
        for i in range(MAX_FIELDS_BYTES // 60_000 + 2):
            form.feed(one.replace(b"%d", str(i).encode()))
    # A finalize sent as a large multipart form is refused like a large JSON one.
    done = upload(client, photos.url, b"abc", token=photos.token, chunk=100, finalize=False)
    fields = {f"f{i}": "x" * 60_000 for i in range(20)}
    r = client.post(done["url"], data={"md5": md5(b"abc"), **fields},
                    files={"x": ("x", b"")}, headers=auth(photos.token))  # fmt: skip
    assert r.status_code == 413


def test_both_parsers_read_the_file_name() -> None:
    from synapse_tui.server.multipart import StreamingForm, parse_whole

    body = (b'--B\r\nContent-Disposition: form-data; name="file"; filename="caf\xc3\xa9.png"'
            b"\r\n\r\nxyz\r\n--B--\r\n")  # fmt: skip
    whole = parse_whole(body, b"B", None)
    streamed = StreamingForm(b"B", sink=None)
    streamed.feed(body)
    streamed.close()
    assert whole is not None and whole.file_name == streamed.file_name == "café.png"
