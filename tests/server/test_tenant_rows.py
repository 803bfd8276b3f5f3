"""Owner rows are made by what stores, never by a refused request of a new tenant."""

from __future__ import annotations

import contextlib
import sqlite3

import httpx

from tests.harness.embedded import EmbeddedServer
from tests.server.helpers import auth


def user_rows(srv: EmbeddedServer) -> int:
    with contextlib.closing(sqlite3.connect(srv.root / "uploads.sqlite3")) as db:
        (count,) = db.execute("SELECT count(*) FROM users").fetchone()
    return int(count)


def test_a_refused_direct_data_file_of_a_new_tenant_makes_no_row(
    embedded_server: EmbeddedServer, client: httpx.Client
) -> None:
    srv = embedded_server
    before = user_rows(srv)
    for i in range(20):
        h = {**auth(srv.token), "Synapse-Tenant": f"t{i}"}
        # A form without its `file` part, and one whose file name is not valid.
        r = client.post(srv.url + "/data_files/", data={"x": "1"}, files={"other": ("a", b"1")},
                        headers=h)  # fmt: skip
        assert r.status_code == 400, r.text
        r = client.post(srv.url + "/data_files/", files={"file": ("n" * 300, b"abc")}, headers=h)
        assert r.status_code == 400, r.text
    assert user_rows(srv) == before
    h = {**auth(srv.token), "Synapse-Tenant": "stores"}
    r = client.post(srv.url + "/data_files/", files={"file": ("a.bin", b"abc")}, headers=h)
    assert r.status_code == 201 and user_rows(srv) == before + 1
    listed = client.get(srv.url + "/chunked_upload/", headers=h).json()
    assert [u["id"] for u in listed] == [r.json()["chunked_upload"]]
