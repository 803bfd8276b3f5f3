"""Protocol edge cases on httpx.MockTransport: headers, bodies, error mapping, origin checks."""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from synapse_tui.engine import protocol
from synapse_tui.engine.errors import (
    AlreadyComplete,
    AuthError,
    ChecksumMismatch,
    OffsetMismatch,
    OriginError,
    OutcomeUnknown,
    ProtocolError,
    ServerRejected,
    TransientError,
    UploadGone,
)
from synapse_tui.engine.protocol import (
    MAX_RETRY_AFTER,
    Credentials,
    ProtocolClient,
    join_url,
    parse_retry_after,
)

ROOT = "http://backend.test:8000/api"
UPLOAD_URL = ROOT + "/chunked_upload/0b6e/"


def answer(offset: int = 3, url: str = UPLOAD_URL, **extra: object) -> dict[str, object]:
    return {"id": "0b6e", "url": url, "offset": offset, "status": 1, "filename": "f", **extra}


def client_with(
    handler: Callable[[httpx.Request], httpx.Response],
    creds: Credentials | None = None,
    root: str = ROOT,
) -> ProtocolClient:
    return ProtocolClient(
        root,
        creds or Credentials(access_token="s3cret-token"),
        transport=httpx.MockTransport(handler),
    )


def body_of(data: bytes) -> Callable[[], AsyncIterator[bytes]]:
    async def gen() -> AsyncIterator[bytes]:
        for i in range(0, len(data), 2):
            yield data[i : i + 2]

    return gen


async def test_bodies_go_with_their_host_header_and_length() -> None:
    """A file body goes to httpx as a ready stream, so the client sets what httpx would have:
    Host (a proxy or a virtual host routes by it; the server builds its URLs from it)."""
    seen: list[tuple[str | None, str | None, bytes]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = request.read()
        seen.append((request.headers.get("host"), request.headers.get("content-length"), body))
        return httpx.Response(200, json=answer())

    client = client_with(handler)
    await client.upload_whole("f", body_of(b"abc"), 3, "900150983cd24fb0d6963f7d28e17f72")
    await client.put_chunk(None, "f", body_of(b"abc"), 0, 3, 10)
    await client.put_chunk(UPLOAD_URL, "f", body_of(b"abc"), 3, 3, 10)
    assert [host for host, _, _ in seen] == ["backend.test:8000"] * 3
    assert all(length == str(len(body)) and b"abc" in body for _, length, body in seen)


async def test_first_chunk_is_a_multipart_put_with_content_range_and_token() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=answer(offset=3))

    client = client_with(handler)
    info = await client.put_chunk(None, "name.bin", body_of(b"abc"), 0, 3, 10)
    req = seen[0]
    assert req.method == "PUT"
    assert str(req.url) == ROOT + "/chunked_upload/"
    assert req.headers["Content-Range"] == "bytes 0-2/10"
    assert req.headers["Synapse-Access-Token"] == "Token s3cret-token"
    assert "transfer-encoding" not in req.headers
    body = req.read()
    assert int(req.headers["Content-Length"]) == len(body)
    boundary = req.headers["Content-Type"].split("boundary=")[1]
    field = f'--{boundary}\r\nContent-Disposition: form-data; name="filename"\r\n\r\n'
    assert (field + "name.bin\r\n").encode() in body
    assert b'name="file"' in body and b"\r\n\r\nabc\r\n--" + boundary.encode() + b"--\r\n" in body
    assert info.offset == 3 and info.url == UPLOAD_URL


async def test_requests_name_the_client_and_gzip_answers_are_decoded() -> None:
    import gzip

    from synapse_tui.engine.protocol import USER_AGENT

    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        packed = gzip.compress(json.dumps(answer(offset=7)).encode())
        return httpx.Response(200, content=packed, headers={"Content-Encoding": "gzip"})

    client = client_with(handler)
    info = await client.state(UPLOAD_URL)
    assert info.offset == 7
    headers = seen[0].headers
    assert headers["User-Agent"] == USER_AGENT and headers["Host"] == "backend.test:8000"
    assert "gzip" in headers["Accept-Encoding"]


async def test_user_token_and_tenant_headers() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=answer())

    client = client_with(handler, Credentials(user_token="u-tok", tenant="acme"))
    await client.state(UPLOAD_URL)
    assert seen[0].headers["Authorization"] == "Token u-tok"
    assert seen[0].headers["Synapse-Tenant"] == "Token acme"
    assert "Synapse-Access-Token" not in seen[0].headers


async def test_finalize_posts_md5_with_a_long_read_timeout() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=answer(offset=10, status=2, completed_at="now"))

    client = client_with(handler)
    size = 50 * 1024**3
    info = await client.finalize(UPLOAD_URL, "d41d8cd98f00b204e9800998ecf8427e", size)
    assert seen[0].method == "POST"
    assert seen[0].read() == b"md5=d41d8cd98f00b204e9800998ecf8427e"
    read_timeout = seen[0].extensions["timeout"]["read"]
    assert read_timeout > client.timeouts.read and read_timeout >= size / (20 * 1024**2)
    assert info.complete


@pytest.mark.parametrize(
    ("status", "payload", "error"),
    [
        (
            400,
            {"detail": "Offsets do not match", "expected_offset": 7, "provided_offset": 3},
            OffsetMismatch,
        ),
        (400, {"detail": "Offsets do not match", "offset": 7}, OffsetMismatch),
        (400, {"detail": 'Upload has already been marked as "complete"'}, AlreadyComplete),
        (400, {"detail": "checksum does not match"}, ChecksumMismatch),
        (400, {"detail": "Error in request headers"}, ServerRejected),
        (401, {"detail": "Invalid token."}, AuthError),
        (403, {"detail": "Forbidden"}, AuthError),
        (404, {"detail": "Not found."}, UploadGone),
        (410, {"detail": "Upload has expired"}, UploadGone),
        (413, {"detail": "Size of file exceeds the limit (10 bytes)"}, ServerRejected),
        (507, {"detail": "Insufficient storage"}, ServerRejected),
        (408, {"detail": "timeout"}, TransientError),
        (429, {"detail": "slow down"}, TransientError),
        (500, {"detail": "boom"}, TransientError),
        (503, {"detail": "maintenance"}, TransientError),
        (302, {}, ProtocolError),
    ],
)
async def test_answers_map_to_the_error_tree(
    status: int, payload: dict[str, object], error: type[Exception]
) -> None:
    client = client_with(lambda r: httpx.Response(status, json=payload))
    with pytest.raises(error) as info:
        await client.put_chunk(UPLOAD_URL, "f", body_of(b"abc"), 3, 3, 10)
    if error is OffsetMismatch:
        assert info.value.expected == 7  # type: ignore[attr-defined]


async def test_server_message_is_kept_and_field_errors_are_one_line() -> None:
    client = client_with(
        lambda r: httpx.Response(400, json={"file": ["The submitted file is empty."]})
    )
    with pytest.raises(ServerRejected, match=r"file: The submitted file is empty\.$"):
        await client.put_chunk(None, "f", body_of(b"a"), 0, 1, 1)


async def test_redirects_are_not_followed() -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(str(request.url))
        return httpx.Response(307, headers={"Location": "http://elsewhere.test/x"})

    with pytest.raises(ProtocolError, match="redirect"):
        await client_with(handler).state(UPLOAD_URL)
    assert calls == [UPLOAD_URL]


@pytest.mark.parametrize(
    "url",
    [
        "http://evil.test:8000/api/chunked_upload/0b6e/",  # another host
        "http://backend.test:9999/api/chunked_upload/0b6e/",  # another port
        "https://backend.test:8000/api/chunked_upload/0b6e/",  # another scheme
        # the root's scheme and authority as text, not followed by the "/" that ends them
        "http://backend.test:8000@evil.test/api/chunked_upload/0b6e/",
        "http://backend.test:80001/api/chunked_upload/0b6e/",  # a port out of range
        "http://backend.test:8000.evil.test/api/chunked_upload/0b6e/",  # not a port
    ],
)
async def test_server_url_outside_the_origin_is_refused_before_sending(url: str) -> None:
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json=answer(url=url))

    client = client_with(handler)
    with pytest.raises(OriginError):
        await client.put_chunk(None, "f", body_of(b"abc"), 0, 3, 10)
    # The creating request went to the configured origin; nothing goes to the other one.
    with pytest.raises(OriginError):
        await client.state(url)
    assert all(r.url.host == "backend.test" and r.url.port == 8000 for r in sent)


async def test_parsed_urls_are_kept_only_once_their_origin_passed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(str(request.url))
        return httpx.Response(200, json=answer())

    client = client_with(handler)
    monkeypatch.setattr(protocol, "MAX_KNOWN_URLS", 4)
    for _ in range(3):
        await client.state(UPLOAD_URL)
        with pytest.raises(OriginError):  # refused every time, never kept
            await client.state("http://evil.test:8000/api/chunked_upload/0b6e/")
    assert sent == [UPLOAD_URL] * 3
    for n in range(10):
        await client.state(f"{UPLOAD_URL}?n={n}")
    assert len(client._urls) <= 4  # bounded
    assert sent[-1] == f"{UPLOAD_URL}?n=9"


async def test_https_to_http_downgrade_is_refused() -> None:
    client = client_with(lambda r: httpx.Response(200, json=answer()), root="https://b.test/api")
    with pytest.raises(OriginError):
        await client.state("http://b.test/api/chunked_upload/1/")


async def test_default_ports_count_as_the_same_origin() -> None:
    client = client_with(
        lambda r: httpx.Response(
            200, json=answer(url="https://b.test:443/api/chunked_upload/0b6e/")
        ),
        root="https://b.test/api",
    )
    info = await client.state("https://b.test/api/chunked_upload/0b6e/")
    assert info.offset == 3


@pytest.mark.parametrize(
    "content",
    [b"not json", b'{"id": "x"}', b'{"id": "x", "url": "u", "offset": -1}', b"[1, 2]"],
)
async def test_malformed_2xx_answers_are_protocol_errors(content: bytes) -> None:
    client = client_with(lambda r: httpx.Response(200, content=content))
    with pytest.raises(ProtocolError):
        await client.put_chunk(None, "f", body_of(b"abc"), 0, 3, 10)


async def test_connection_errors_are_transient_and_cuts_are_unknown_outcomes() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    def cut(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError("peer closed", request=request)

    with pytest.raises(TransientError) as refused:
        await client_with(refuse).put_chunk(None, "f", body_of(b"abc"), 0, 3, 10)
    assert not isinstance(refused.value, OutcomeUnknown)
    with pytest.raises(OutcomeUnknown):
        await client_with(cut).put_chunk(None, "f", body_of(b"abc"), 0, 3, 10)
    # A GET has no side effect: a cut GET is plainly transient.
    with pytest.raises(TransientError) as got:
        await client_with(cut).state(UPLOAD_URL)
    assert not isinstance(got.value, OutcomeUnknown)


def test_retry_after_seconds_date_and_cap() -> None:
    now = time.time()
    assert parse_retry_after("7") == 7.0
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert 28.0 <= (parse_retry_after(date, now=now) or 0) <= 30.0
    assert parse_retry_after("99999") == MAX_RETRY_AFTER
    assert parse_retry_after(email.utils.formatdate(now - 60, usegmt=True), now=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


async def test_429_carries_the_retry_after_hint() -> None:
    client = client_with(lambda r: httpx.Response(429, headers={"Retry-After": "12"}, json={}))
    with pytest.raises(TransientError) as info:
        await client.state(UPLOAD_URL)
    assert info.value.retry_after == 12.0


def test_credentials_never_show_their_secrets() -> None:
    creds = Credentials(access_token="tok-AAAA", user_token="tok-BBBB", tenant="ten-CCCC")
    for text in (repr(creds), str(creds), f"{creds}", json.dumps({"c": str(creds)})):
        assert "tok-AAAA" not in text and "tok-BBBB" not in text and "ten-CCCC" not in text
    assert "hidden" in repr(creds)


def test_join_url_keeps_the_prefix() -> None:
    assert join_url("http://h:1/api/", "chunked_upload/") == "http://h:1/api/chunked_upload/"
    assert join_url("http://h:1", "/chunked_upload/") == "http://h:1/chunked_upload/"


async def test_list_accepts_plain_and_paginated_lists() -> None:
    items = [answer(offset=1), {"bad": True}]
    plain = client_with(lambda r: httpx.Response(200, json=items))
    paged = client_with(lambda r: httpx.Response(200, json={"count": 2, "results": items}))
    assert [u.offset for u in await plain.list_uploads()] == [1]
    assert [u.offset for u in await paged.list_uploads()] == [1]
