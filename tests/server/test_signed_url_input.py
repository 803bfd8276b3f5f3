"""Signed download URLs with absurd query values: a 403, never a 500."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from tests.harness.embedded import EmbeddedServer
from tests.server.helpers import auth


def test_absurd_expiries_are_refused_with_403(
    make_server: Callable[..., EmbeddedServer], client: httpx.Client
) -> None:
    srv = make_server(prefix="/api", collections=[("photos", ["image"])])
    made = client.post(srv.url + "/data_files/", files={"file": ("a.png", b"bytes")},
                       headers=auth(srv.token))  # fmt: skip
    assert made.status_code == 201, made.text
    url = httpx.URL(made.json()["file"])
    assert client.get(url).content == b"bytes"
    # Past Python's 4,300-digit bound int() raises; Unicode digits are digits to isdigit().
    for expires in ("9" * 5000, "\u0661\u0662", "1" * 40):
        answer = client.get(url.copy_set_param("expires", expires))
        assert answer.status_code == 403, (expires[:10], answer.status_code)
