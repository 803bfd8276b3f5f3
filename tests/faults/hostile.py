"""A small hostile chunked-upload server on 127.0.0.1, in the test's event loop.

It speaks enough of the protocol (docs/protocol.md: create, chunks, finalize, state, list) for
the engine to upload through it, storing what it keeps in memory, and misbehaves on
demand: it forgets chunks, drops its offset back to 0, answers finalize without
completing, lists uploads in pages of `page_size`, or hands a request to a `fault`, an
async function that writes whatever raw bytes it likes (drip-fed answers, an endless
stream of `100 Continue`, 100 MB of JSON) and returns True when it answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

PREFIX = "/api"
RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+)$")


@dataclass
class Request:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes

    @property
    def path(self) -> str:
        return urlsplit(self.target).path


@dataclass
class Upload:
    id: str
    filename: str
    data: bytearray = field(default_factory=bytearray)
    status: int = 1
    md5: str | None = None


Fault = Callable[[Request, asyncio.StreamWriter], Awaitable[bool]]


def json_answer(status: int, body: Any, extra: str = "") -> bytes:
    data = json.dumps(body).encode()
    head = f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n{extra}"
    return head.encode() + b"Content-Length: %d\r\n\r\n" % len(data) + data


def multipart_file(request: Request) -> tuple[str, bytes, dict[str, str]]:
    """The `filename` field, the `file` part's bytes and the other text fields."""
    boundary = request.headers["content-type"].split("boundary=", 1)[1].encode()
    fields: dict[str, str] = {}
    data = b""
    for part in request.body.split(b"--" + boundary)[1:-1]:
        head, _, value = part[2:].partition(b"\r\n\r\n")
        value = value[:-2]  # the CRLF before the next boundary
        name = re.search(rb'name="([^"]+)"', head)
        assert name is not None
        if name.group(1) == b"file":
            data = value
        else:
            fields[name.group(1).decode()] = value.decode()
    return fields.pop("filename", ""), data, fields


class HostileServer:
    """`keep`: the number of chunks of each upload the server keeps (None: all); after
    that a chunk is answered 200 with the offset unchanged. `drop_to_zero`: every PUT
    that does not start at 0 empties the upload (offset back to 0). `finalize_incomplete`:
    so many finalize answers say 200 with status 1 and complete nothing (None: all)."""

    def __init__(self) -> None:
        self.uploads: dict[str, Upload] = {}
        self.requests: list[Request] = []
        self.faults: list[Fault] = []
        self.keep: int | None = None
        self.drop_to_zero = False
        self.finalize_incomplete: int | None = 0
        self.page_size: int | None = None
        self.put_bytes = 0
        self._kept: dict[str, int] = {}
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{PREFIX}"

    async def __aenter__(self) -> HostileServer:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 5)

    def of(self, method: str) -> list[Request]:
        return [r for r in self.requests if r.method == method]

    def named(self, name: str) -> list[Upload]:
        return [u for u in self.uploads.values() if u.filename == name]

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            while True:
                request = await self._read(reader)
                if request is None:
                    break
                self.requests.append(request)
                handled = False
                for fault in list(self.faults):
                    if await fault(request, writer):
                        handled = True
                        break
                if not handled:
                    writer.write(self.apply(request))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            pass  # the server is closing: end quietly (asyncio logs a cancelled handler)
        finally:
            self._tasks.discard(task)
            writer.close()

    @staticmethod
    async def _read(reader: asyncio.StreamReader) -> Request | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        return Request(method, target, headers, body)

    def info(self, upload: Upload) -> dict[str, Any]:
        return {
            "id": upload.id,
            "url": f"{self.url}/chunked_upload/{upload.id}/",
            "offset": len(upload.data),
            "filename": upload.filename,
            "status": upload.status,
            "checksum": upload.md5,
            "completed_at": "2026-01-01T00:00:00Z" if upload.status == 2 else None,
        }

    def apply(self, request: Request) -> bytes:
        parts = [p for p in request.path.removeprefix(PREFIX).split("/") if p]
        if not parts or parts[0] != "chunked_upload":
            return json_answer(404, {"detail": "Not found."})
        upload = self.uploads.get(parts[1]) if len(parts) > 1 else None
        if len(parts) > 1 and upload is None:
            return json_answer(404, {"detail": "Not found."})
        if request.method == "GET":
            return self._list(request) if upload is None else json_answer(200, self.info(upload))
        if request.method == "PUT":
            return self._put(request, upload)
        if request.method == "POST" and upload is None:
            name, data, fields = multipart_file(request)
            upload = Upload(uuid.uuid4().hex, name, bytearray(data), 2, fields.get("md5"))
            self.uploads[upload.id] = upload
            if self.finalize_incomplete is None or self.finalize_incomplete > 0:
                upload.status = 1  # stored, and answered as not complete
            return json_answer(200, self.info(upload))
        if request.method == "POST" and upload is not None:
            md5 = parse_qs(request.body.decode())["md5"][0]
            if hashlib.md5(upload.data).hexdigest() != md5:
                return json_answer(400, {"detail": "checksum does not match"})
            if self.finalize_incomplete is None or self.finalize_incomplete > 0:
                if self.finalize_incomplete is not None:
                    self.finalize_incomplete -= 1
                return json_answer(200, self.info(upload))  # status 1, no completed_at
            upload.status, upload.md5 = 2, md5
            return json_answer(200, self.info(upload))
        return json_answer(405, {"detail": "Method not allowed."})

    def _put(self, request: Request, upload: Upload | None) -> bytes:
        match = RANGE.match(request.headers.get("content-range", ""))
        assert match, "client sent no valid Content-Range"
        start = int(match.group(1))
        name, data, _ = multipart_file(request)
        self.put_bytes += len(data)
        if upload is None:
            upload = Upload(uuid.uuid4().hex, name)
            self.uploads[upload.id] = upload
        if start != len(upload.data):
            body = {"detail": "Offsets do not match", "expected_offset": len(upload.data)}
            return json_answer(400, {**body, "provided_offset": start})
        if self.drop_to_zero and start > 0:
            upload.data.clear()
            return json_answer(200, self.info(upload))
        kept = self._kept.get(upload.id, 0)
        if self.keep is None or kept < self.keep:
            upload.data += data
            self._kept[upload.id] = kept + 1
        return json_answer(200, self.info(upload))

    def _list(self, request: Request) -> bytes:
        items = [self.info(u) for u in self.uploads.values()]
        if self.page_size is None:
            return json_answer(200, items)
        page = int(parse_qs(urlsplit(request.target).query).get("page", ["1"])[0])
        size = self.page_size
        chunk = items[(page - 1) * size : page * size]
        more = page * size < len(items)
        following = f"{self.url}/chunked_upload/?page={page + 1}" if more else None
        previous = f"{self.url}/chunked_upload/?page={page - 1}" if page > 1 else None
        body = {"count": len(items), "next": following, "previous": previous, "results": chunk}
        return json_answer(200, body)
