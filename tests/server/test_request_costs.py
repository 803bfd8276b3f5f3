"""What one small upload request computes: the owner's key once, ids without UUID objects."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from synapse_tui.server.auth import Authenticator
from synapse_tui.server.ids import is_upload_id, new_upload_id
from tests.harness.embedded import EmbeddedServer
from tests.server.helpers import CONTENT_TYPE, auth, form_body, md5, put


def _old_is_upload_id(text: str) -> bool:
    try:
        return str(uuid.UUID(text)) == text
    except ValueError:
        return False


def test_new_upload_ids_are_canonical_random_uuids() -> None:
    ids = [new_upload_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    for text in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text and is_upload_id(text)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122


@pytest.mark.parametrize(
    "text",
    [
        str(uuid.uuid4()),
        str(uuid.uuid4()).upper(),
        "{" + str(uuid.uuid4()) + "}",
        "urn:uuid:" + str(uuid.uuid4()),
        uuid.uuid4().hex,
        str(uuid.uuid4()) + "\n",
        str(uuid.uuid4())[:-1],
        str(uuid.uuid4()) + "0",
        "1234567٣-1234-1234-1234-123456789012",  # an Arabic-Indic digit
        "g2345678-1234-1234-1234-123456789012",
        "../../etc/passwd",
        "",
    ],
)
def test_is_upload_id_answers_as_the_uuid_round_trip(text: str) -> None:
    assert is_upload_id(text) == _old_is_upload_id(text)


def _counting_keys(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real: Callable[..., str] = Authenticator.owner_key

    def counting(self: Authenticator, headers: Any) -> str:
        calls.append(1)
        return real(self, headers)

    monkeypatch.setattr(Authenticator, "owner_key", counting)
    return calls


def test_a_whole_file_post_hashes_the_credentials_once(
    embedded_server: EmbeddedServer, client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _counting_keys(monkeypatch)
    data = b"small file" * 100
    head, file, tail = form_body({"filename": "a.bin", "md5": md5(data)}, data)
    headers = {**auth(embedded_server.token), "Content-Type": CONTENT_TYPE}
    r = client.post(
        embedded_server.url + "/chunked_upload/", content=head + file + tail, headers=headers
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == 2
    assert len(calls) == 1


def test_a_first_chunk_hashes_the_credentials_once(
    embedded_server: EmbeddedServer, client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _counting_keys(monkeypatch)
    r = put(
        client, embedded_server.url + "/chunked_upload/", b"x" * 500, token=embedded_server.token
    )
    assert r.status_code == 200, r.text
    assert len(calls) == 1


def test_chunk_and_finalize_answers_are_the_rows_as_stored(
    embedded_server: EmbeddedServer, client: httpx.Client
) -> None:
    # The answers are built from the row and the update made, not read back: they must
    # equal what a GET reads afterwards.
    token = embedded_server.token
    data = b"0123456789" * 300
    first = put(
        client, embedded_server.url + "/chunked_upload/", data[:1000], token=token, total=3000
    )
    assert first.status_code == 200, first.text
    url = first.json()["url"]
    embedded_server.clock.advance(3.0)
    second = put(client, url, data[1000:], token=token, start=1000, total=3000)
    assert second.status_code == 200, second.text
    assert second.json()["offset"] == 3000
    assert second.json() == client.get(url, headers=auth(token)).json()
    embedded_server.clock.advance(2.0)
    done = client.post(url, data={"md5": md5(data)}, headers=auth(token))
    assert done.status_code == 200, done.text
    assert done.json()["status"] == 2 and done.json()["checksum"] == md5(data)
    assert done.json() == client.get(url, headers=auth(token)).json()
