"""Numbers in query strings that int() refuses (Unicode digits, thousands of digits): the
answer DRF would give, never a 500."""

from __future__ import annotations

import httpx
import pytest

from tests.harness.embedded import EmbeddedServer
from tests.server.helpers import auth

ODD = ["\u00b2", "9" * 5000, "\u0661"]  # a superscript two, 5,000 nines, an Arabic-Indic one


@pytest.mark.parametrize("path", ["/data_units/", "/data_collections/"])
def test_page_numbers_int_refuses_are_defaults_or_404(
    embedded_server: EmbeddedServer, client: httpx.Client, path: str
) -> None:
    srv = embedded_server
    for value in ODD:
        sized = client.get(srv.url + path, params={"page_size": value}, headers=auth(srv.token))
        assert sized.status_code == 200, (value[:5], sized.status_code)
        paged = client.get(srv.url + path, params={"page": value}, headers=auth(srv.token))
        assert paged.status_code == 404, (value[:5], paged.status_code)


def test_a_collection_filter_int_refuses_is_a_400(
    embedded_server: EmbeddedServer, client: httpx.Client
) -> None:
    srv = embedded_server
    for value in ODD:
        r = client.get(srv.url + "/data_units/", params={"data_collection": value},
                       headers=auth(srv.token))  # fmt: skip
        assert r.status_code == 400, (value[:5], r.status_code)


def test_a_unit_id_beyond_sqlite_integers_is_a_404(
    embedded_server: EmbeddedServer, client: httpx.Client
) -> None:
    srv = embedded_server
    for unit_id in ("9" * 30, "9" * 5000):
        r = client.get(f"{srv.url}/data_units/{unit_id}/", headers=auth(srv.token))
        assert r.status_code == 404, r.status_code


def test_ids_of_thousands_of_digits_in_paths_are_404_even_unauthenticated(
    embedded_server: EmbeddedServer, client: httpx.Client
) -> None:
    srv = embedded_server
    huge = "9" * 5000
    for path in (f"/data_collections/{huge}/", f"/storages/{huge}/",
                 f"/data_files/{huge}/download/x?expires=1&signature=a"):  # fmt: skip
        assert client.get(srv.url + path, headers=auth(srv.token)).status_code == 404, path
    assert client.get(f"{srv.url}/data_files/{huge}/download/x").status_code == 404
