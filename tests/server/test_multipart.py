"""The server's multipart parsing: the whole-body fast path agrees with the streaming parser."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from synapse_tui.engine.protocol import multipart_body
from synapse_tui.server.multipart import (
    MAX_FIELD_BYTES,
    FormError,
    StreamingForm,
    boundary_of,
    parse_whole,
)

B = b"b0undary-x"
DATA = bytes(range(256)) * 40 + b"\r\n--b0undary-y\r\n-" + b"\r\n--b0undary-xx"[:-3]


def streamed(body: bytes, boundary: bytes = B) -> object:
    """What the streaming parser makes of `body` fed in small pieces: a summary or 'error'."""
    got: list[bytes] = []
    form = StreamingForm(boundary, lambda v: got.append(bytes(v)))
    try:
        for i in range(0, len(body), 7):
            form.feed(body[i : i + 7])
        form.close()
    except FormError:
        return "error"
    return (form.fields, form.file_seen, form.file_size, b"".join(got))


def whole(body: bytes, boundary: bytes = B) -> object:
    got: list[bytes] = []
    form = parse_whole(body, boundary, lambda v: got.append(bytes(v)))
    if form is None:
        assert got == []  # nothing handed over when it declines
        return None
    return (form.fields, form.file_seen, form.file_size, b"".join(got))


def part(name: bytes, content: bytes, extra: bytes = b"", boundary: bytes = B) -> bytes:
    return (
        b"--" + boundary + b'\r\nContent-Disposition: form-data; name="' + name + b'"' + extra
        + b"\r\n\r\n" + content + b"\r\n"
    )  # fmt: skip


def form_of(*parts: bytes, end: bytes = b"--" + B + b"--\r\n") -> bytes:
    return b"".join(parts) + end


PLAIN = [
    form_of(
        part(b"filename", b"a.bin"),
        part(b"md5", b"0" * 32),
        part(b"file", DATA, b'; filename="a.bin"'),
    ),
    form_of(part(b"file", b"", b'; filename="e"'), part(b"filename", b"e")),  # empty file
    form_of(part(b"file", DATA), part(b"file", b"second", b'; filename="2"')),  # 2nd file skipped
    form_of(part(b"other", b"x", b'; filename="o"'), part(b"file", DATA)),  # other files skipped
    form_of(part(b"f\xc3\xa9ld", b"v\xff"), part(b"f\xc3\xa9ld", b"again")),  # first value kept
    form_of(part(b"file", DATA), end=b"--" + B + b"--"),  # no CRLF at the very end
    form_of(part(b"name", b"x" * MAX_FIELD_BYTES)),
]
ODD = [
    b"preamble\r\n" + form_of(part(b"file", DATA)),
    form_of(part(b"file", DATA), end=b"--" + B + b"--\r\nepilogue"),
    form_of(part(b"file", DATA), end=b""),  # cut short
    form_of(part(b"file", DATA))[:-20],
    form_of(part(b"na;me", b"x")),
    form_of(part(b'n\\"a', b"x")),
    form_of(part(b"file", DATA, b"; size=3")),
    form_of(part(b"name", b"x" * (MAX_FIELD_BYTES + 1))),  # too large: an error
    form_of(part(b"file", DATA)).replace(b"Content-Disposition: ", b"content-disposition:"),
    form_of(part(b"file", DATA)).replace(b"\r\n\r\n", b"\r\nX-Extra : 1\r\n\r\n", 1),
    form_of(part(b"file", DATA)).replace(b"\r\n\r\n", b"\r\n\r\n\r\n", 1),
    form_of(part(b"file", DATA)).replace(b"Content-D", b"Content-Type: a\r\nContent-D", 1),
    b"--" + B + b"--\r\n",
    b"",
    b"--" + B + b"x\r\n",
    form_of(part(b"file", b"a\r\n--" + B + b"Z not a delimiter")),  # the data goes on
]  # fmt: skip


@pytest.mark.parametrize("body", PLAIN + ODD)
def test_the_fast_path_agrees_with_the_streaming_parser_or_declines(body: bytes) -> None:
    fast = whole(body)
    if body in PLAIN:
        assert fast is not None and fast == streamed(body)
    elif fast is not None:
        assert fast == streamed(body)


def test_the_bodies_clients_send_take_the_fast_path() -> None:
    async def content() -> bytes:
        async def file() -> object:
            yield DATA

        stream, length, kind = multipart_body("a b.bin", file, len(DATA), extra={"md5": "0" * 32})  # type: ignore[arg-type]
        body = b"".join([piece async for piece in stream])
        assert len(body) == length
        return body + b"|" + kind.encode()

    ours, _, ours_type = asyncio.run(content()).rpartition(b"|")
    request = httpx.Request(
        "POST",
        "http://h/",
        data={"filename": "a b.bin", "md5": "0" * 32},
        files={"file": ("a b.bin", DATA)},
    )
    theirs = request.read()
    for body, kind in ((ours, ours_type.decode()), (theirs, request.headers["content-type"])):
        boundary = boundary_of(kind)
        assert boundary is not None
        fast = whole(body, boundary)
        assert fast is not None and fast == streamed(body, boundary)
        assert fast == ({"filename": "a b.bin", "md5": "0" * 32}, True, len(DATA), DATA)


@pytest.mark.parametrize(
    "content_type",
    [
        "multipart/form-data; boundary=abc",
        'multipart/form-data; boundary="a b"',
        "multipart/form-data;boundary=abc",
        "Multipart/Form-Data; boundary=abc; charset=utf-8",
        "text/plain; boundary=abc",
        "multipart/form-data",
        "",
    ],
)
def test_the_boundary_is_read_as_before(content_type: str) -> None:
    from python_multipart.multipart import parse_options_header

    kind, params = parse_options_header(content_type)
    expected = params.get(b"boundary") or None if kind == b"multipart/form-data" else None
    assert boundary_of(content_type) == expected
