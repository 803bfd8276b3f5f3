"""Request builders and waits shared by the embedded-backend tests."""

from __future__ import annotations

import hashlib
import json
import socket
import struct
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx

BOUNDARY = "synapse-test-boundary"


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def auth(token: str) -> dict[str, str]:
    return {"Synapse-Access-Token": f"Token {token}"}


def form_body(
    fields: dict[str, str], file: bytes | None, *, file_first: bool = False
) -> tuple[bytes, bytes, bytes]:
    """(head, file bytes, tail) of a multipart body with `fields` and a `file` part."""
    parts_before: list[bytes] = []
    parts_after: list[bytes] = []
    for name, value in fields.items():
        part = (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        ).encode()
        (parts_after if file_first else parts_before).append(part)
    if file is None:
        return b"".join(parts_before + parts_after) + f"--{BOUNDARY}--\r\n".encode(), b"", b""
    file_head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="blob"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    head = b"".join(parts_before) + file_head
    tail = b"\r\n" + b"".join(parts_after) + f"--{BOUNDARY}--\r\n".encode()
    return head, file, tail


CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


def put(
    client: httpx.Client,
    url: str,
    data: bytes | None,
    *,
    token: str,
    start: int = 0,
    total: int | None = None,
    content_range: str | None = None,
    filename: str | None = "file.bin",
    method: str = "PUT",
    extra: dict[str, str] | None = None,
) -> httpx.Response:
    """One chunk as the SDK sends it (filename field, file part, Content-Range)."""
    headers = auth(token)
    if content_range is None and data is not None:
        total = start + len(data) if total is None else total
        content_range = f"bytes {start}-{start + len(data) - 1}/{total}"
    if content_range is not None:
        headers["Content-Range"] = content_range
    fields = {} if filename is None else {"filename": filename}
    fields.update(extra or {})
    head, file, tail = form_body(fields, data)
    headers["Content-Type"] = CONTENT_TYPE
    return client.request(method, url, content=head + file + tail, headers=headers)


def upload(
    client: httpx.Client,
    api: str,
    data: bytes,
    *,
    token: str,
    chunk: int,
    filename: str = "file.bin",
    finalize: bool = True,
) -> dict[str, Any]:
    """Upload `data` in chunks of `chunk` bytes (then finalize); returns the last JSON."""
    url = api + "/chunked_upload/"
    body: dict[str, Any] = {}
    for start in range(0, len(data), chunk):
        r = put(
            client, url, data[start : start + chunk], token=token, start=start, total=len(data),
            filename=filename,
        )  # fmt: skip
        assert r.status_code == 200, r.text
        body = r.json()
        url = body["url"]
    if finalize:
        r = client.post(url, data={"md5": md5(data)}, headers=auth(token))
        assert r.status_code == 200, r.text
        body = r.json()
    return body


def upload_rest(
    client: httpx.Client, srv: Any, url: str, data: bytes, start: int
) -> dict[str, Any]:
    """PUT `data[start:]` as one chunk, then finalize; returns the final JSON."""
    r = put(client, url, data[start:], token=srv.token, start=start, total=len(data))
    assert r.status_code == 200, r.text
    r = client.post(url, data={"md5": md5(data)}, headers=auth(srv.token))
    assert r.status_code == 200, r.text
    return r.json()


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Poll a condition (not a fixed sleep): fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


class RawRequest:
    """An HTTP/1.1 request written by hand, so a test can pause or cut its body."""

    def __init__(self, url: str, method: str, headers: dict[str, str], body_length: int) -> None:
        parts = urlsplit(url)
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=30)
        lines = [f"{method} {parts.path} HTTP/1.1", f"Host: {parts.netloc}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        lines.append(f"Content-Length: {body_length}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def response(self) -> tuple[int, Any]:
        buf = b""
        while b"\r\n\r\n" not in buf:
            got = self.sock.recv(65536)
            assert got, "connection closed before a response"
            buf += got
        head, _, rest = buf.partition(b"\r\n\r\n")
        status = int(head.split()[1])
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        while len(rest) < length:
            got = self.sock.recv(65536)
            assert got, "connection closed mid-response"
            rest += got
        return status, json.loads(rest)

    def abort(self) -> None:
        """Disconnect with a reset, like a killed client."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    def close(self) -> None:
        self.sock.close()


def raw_chunk(
    url: str, token: str, data_len: int, start: int, total: int, filename: str = "file.bin"
) -> tuple[RawRequest, bytes, bytes]:
    """Open a chunk PUT whose body the caller sends: returns (request, head, tail)."""
    head, _, tail = form_body({"filename": filename}, b"")
    headers = {
        **auth(token),
        "Content-Type": CONTENT_TYPE,
        "Content-Range": f"bytes {start}-{start + data_len - 1}/{total}",
    }
    return RawRequest(url, "PUT", headers, len(head) + data_len + len(tail)), head, tail
