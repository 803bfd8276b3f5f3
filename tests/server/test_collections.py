"""Data collections, data files and data units of the embedded backend."""

from __future__ import annotations

import httpx

from tests.harness.embedded import EmbeddedServer
from tests.server.helpers import auth, md5, put, upload

IMAGES = {
    "id": 1,
    "name": "images",
    "file_specifications": [
        {"id": 1, "name": "image", "file_type": "image", "is_required": True,
         "is_primary": True, "function_type": "main", "index": 1},
        {"id": 2, "name": "meta", "file_type": "data", "is_required": True,
         "is_primary": False, "function_type": "sub", "index": 2},
    ],
}  # fmt: skip


def test_collections(embedded_server: EmbeddedServer, client: httpx.Client) -> None:
    srv = embedded_server
    h = auth(srv.token)
    listed = client.get(srv.url + "/data_collections/", headers=h).json()
    assert listed == {"count": 1, "next": None, "previous": None, "results": [IMAGES]}
    one = client.get(srv.url + "/data_collections/1/?expand=file_specifications", headers=h)
    assert one.json() == IMAGES
    missing = client.get(srv.url + "/data_collections/2/", headers=h)
    assert (missing.status_code, missing.json()) == (404, {"detail": "Not found."})
    assert client.get(srv.url + "/data_collections/").status_code == 401


def data_file(
    client: httpx.Client, srv: EmbeddedServer, upload_id: str, token: str
) -> httpx.Response:
    return client.post(srv.url + "/data_files/", json={"chunked_upload": upload_id},
                       headers=auth(token))  # fmt: skip


def test_data_files(embedded_server: EmbeddedServer, client: httpx.Client) -> None:
    srv = embedded_server
    done = upload(client, srv.url, b"pixels", token=srv.token, chunk=6)
    r = data_file(client, srv, done["id"], srv.token)
    assert r.status_code == 201
    body = r.json()
    assert {k: body[k] for k in ("checksum", "size", "chunked_upload", "file_name_original")} == {
        "checksum": md5(b"pixels"), "size": 6, "chunked_upload": done["id"],
        "file_name_original": "file.bin",
    }  # fmt: skip
    assert isinstance(body["id"], int) and body["created_at"].endswith("Z")
    assert client.get(body["file"]).content == b"pixels"  # signed: no token needed
    assert data_file(client, srv, done["id"], srv.token).json()["id"] == r.json()["id"]

    partial = put(client, srv.url + "/chunked_upload/", b"abc", token=srv.token, total=10).json()
    r = data_file(client, srv, partial["id"], srv.token)
    assert (r.status_code, r.json()) == (
        400, {"chunked_upload": ["The chunked upload is not complete."]},
    )  # fmt: skip
    for foreign in (done["id"], "00000000-0000-4000-8000-000000000000", "nope"):
        r = data_file(client, srv, foreign, srv.other_token)
        assert r.status_code == 400
        assert "does not exist" in r.json()["chunked_upload"][0]
    r = client.post(srv.url + "/data_files/", json={}, headers=auth(srv.token))
    assert (r.status_code, r.json()) == (400, {"chunked_upload": ["This field is required."]})


def test_data_units(embedded_server: EmbeddedServer, client: httpx.Client) -> None:
    srv = embedded_server
    image = upload(client, srv.url, b"image bytes", token=srv.token, chunk=100)
    meta = upload(client, srv.url, b'{"w": 1}', token=srv.token, chunk=100)
    for done in (image, meta):
        assert data_file(client, srv, done["id"], srv.token).status_code == 201
    files = {
        "image": {"checksum": image["checksum"], "path": "a/1.png"},
        "meta": {"checksum": meta["checksum"], "path": "a/1.json"},
    }
    unit = {"data_collection": 1, "files": files, "meta": {"origin": "a"}}
    r = client.post(srv.url + "/data_units/", json=unit, headers=auth(srv.token))
    assert r.status_code == 201
    made = r.json()
    assert (made["data_collection"], made["meta"], made["groups"]) == (1, {"origin": "a"}, [])
    for spec, entry in files.items():
        assert {k: made["files"][spec][k] for k in entry} == entry
    assert made["files"]["image"]["is_primary"] and not made["files"]["meta"]["is_primary"]
    r = client.post(srv.url + "/data_units/", json=[unit, {**unit, "meta": {}}],
                    headers=auth(srv.token))  # fmt: skip
    assert r.status_code == 201 and [u["meta"] for u in r.json()] == [{"origin": "a"}, {}]
    listed = client.get(srv.url + "/data_units/?data_collection=1", headers=auth(srv.token))
    assert listed.json()["count"] == 3 and len(listed.json()["results"]) == 3
    other = client.get(srv.url + "/data_units/?data_collection=2", headers=auth(srv.token))
    assert other.json()["results"] == []
    foreign = client.get(srv.url + "/data_units/", headers=auth(srv.other_token)).json()
    assert foreign["count"] == 0


def test_data_unit_checks(embedded_server: EmbeddedServer, client: httpx.Client) -> None:
    srv = embedded_server
    image = upload(client, srv.url, b"image bytes", token=srv.token, chunk=100)
    assert data_file(client, srv, image["id"], srv.token).status_code == 201
    good = {"image": {"checksum": image["checksum"], "path": "x.png"}}

    def post(body: object, token: str = srv.token) -> httpx.Response:
        return client.post(srv.url + "/data_units/", json=body, headers=auth(token))

    r = post({"data_collection": 9, "files": good})
    assert r.status_code == 400
    assert r.json() == {"data_collection": ['Invalid pk "9" - object does not exist.']}
    r = post({"data_collection": 1, "files": {"thumbnail": good["image"]}})
    assert r.status_code == 400
    assert "not a file specification" in r.json()["files"]["thumbnail"][0]
    r = post({"data_collection": 1, "files": {"image": {"checksum": md5(b"other"), "path": "x"}}})
    assert r.status_code == 400 and "No data file" in r.json()["files"]["image"][0]
    r = post({"data_collection": 1, "files": good}, token=srv.other_token)
    assert r.status_code == 400 and "No data file" in r.json()["files"]["image"][0]
    r = post([{"data_collection": 1, "files": good}, {"data_collection": 1}])
    assert r.status_code == 400
    assert r.json() == [{}, {"files": ["This field is required."]}]
    assert client.get(srv.url + "/data_units/", headers=auth(srv.token)).json()["count"] == 0
    r = client.post(srv.url + "/data_units/", content=b"{nope", headers=auth(srv.token))
    assert r.status_code == 400 and r.json()["detail"].startswith("JSON parse error")
