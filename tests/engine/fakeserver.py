"""An in-memory Synapse chunked-upload server on httpx.MockTransport, with fault hooks.

For protocol edge cases only: end-to-end tests use the real servers. `faults` maps a
(method, nth request of that method) key to a callable that may answer instead of the server,
or let it apply the request and then drop the answer ("lost acknowledgement").
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

ROOT = "http://fake.test/api"
RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+)$")


@dataclass
class Upload:
    id: str
    filename: str
    total: int
    data: bytearray = field(default_factory=bytearray)
    status: int = 1
    listed_checksum: bool = True  # drf-chunked-upload lists none

    def json(self) -> dict[str, Any]:
        checksum = hashlib.md5(self.data).hexdigest() if self.status == 2 else None
        return {
            **({"checksum": checksum} if self.listed_checksum else {}),
            "id": self.id,
            "url": f"{ROOT}/chunked_upload/{self.id}/",
            "offset": len(self.data),
            "filename": self.filename,
            "status": self.status,
            "completed_at": "2026-01-01T00:00:00Z" if self.status == 2 else None,
        }


Fault = Callable[[httpx.Request], httpx.Response | None]


def lose_answer(request: httpx.Request, response: httpx.Response) -> None:
    """An `after` hook: the request was applied, then the connection broke."""
    raise httpx.ReadError("connection lost before the answer", request=request)


class FakeServer:
    def __init__(self) -> None:
        self.uploads: dict[str, Upload] = {}
        self.calls: list[tuple[str, str, str]] = []  # method, path, content-range
        self.put_bytes = 0
        self.whole_bytes = 0  # file bytes received in whole-file POSTs
        self.checksums = True  # whole-file uploads list their MD5 (the embedded backend does)
        self.before: dict[tuple[str, int], Fault] = {}
        self.after: dict[tuple[str, int], Callable[[httpx.Request, httpx.Response], None]] = {}
        self.counts: dict[str, int] = {}

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        method = request.method
        self.counts[method] = self.counts.get(method, 0) + 1
        nth = self.counts[method]
        self.calls.append((method, request.url.path, request.headers.get("content-range", "")))
        fault = self.before.get((method, nth))
        if fault is not None:
            answer = fault(request)
            if answer is not None:
                request.read()
                return answer
        response = self.apply(request)
        hook = self.after.get((method, nth))
        if hook is not None:
            hook(request, response)
        return response

    def apply(self, request: httpx.Request) -> httpx.Response:
        if request.headers.get("synapse-access-token") != "Token t0ken":
            return httpx.Response(401, json={"detail": "Invalid token."})
        path = request.url.path.removeprefix("/api/")
        parts = [p for p in path.split("/") if p]
        upload = self.uploads.get(parts[1]) if len(parts) > 1 else None
        if len(parts) > 1 and upload is None:
            return httpx.Response(404, json={"detail": "Not found."})
        if request.method == "GET":
            if upload is None:
                return httpx.Response(200, json=[u.json() for u in self.uploads.values()])
            return httpx.Response(200, json=upload.json())
        body = request.read()
        if request.method == "PUT":
            match = RANGE.match(request.headers.get("content-range", ""))
            assert match, "client sent no valid Content-Range"
            start, end, total = (int(g) for g in match.groups())
            fields, chunk = _parse_multipart(request, body)
            filename = fields.get("filename", "")
            assert len(chunk) == end - start + 1
            self.put_bytes += len(chunk)
            if upload is None:
                upload = Upload(str(uuid.uuid4()), filename, total)
                self.uploads[upload.id] = upload
            elif upload.status == 2:
                return httpx.Response(
                    400, json={"detail": 'Upload has already been marked as "complete"'}
                )
            if start != len(upload.data):
                return httpx.Response(
                    400,
                    json={
                        "detail": "Offsets do not match",
                        "expected_offset": len(upload.data),
                        "provided_offset": start,
                    },
                )
            upload.data += chunk
            return httpx.Response(200, json=upload.json())
        assert request.method == "POST"
        if upload is None:  # a whole file in one request
            fields, data = _parse_multipart(request, body)
            self.whole_bytes += len(data)
            if hashlib.md5(data).hexdigest() != fields.get("md5"):
                return httpx.Response(400, json={"detail": "checksum does not match"})
            upload = Upload(str(uuid.uuid4()), fields.get("filename", ""), len(data), data, 2)
            upload.listed_checksum = self.checksums
            self.uploads[upload.id] = upload
            return httpx.Response(200, json=upload.json())
        md5 = body.decode().split("md5=")[1]
        if upload.status == 2:
            return httpx.Response(
                400, json={"detail": 'Upload has already been marked as "complete"'}
            )
        if hashlib.md5(upload.data).hexdigest() != md5:
            return httpx.Response(400, json={"detail": "checksum does not match"})
        upload.status = 2
        return httpx.Response(200, json=upload.json())


def _parse_multipart(request: httpx.Request, body: bytes) -> tuple[dict[str, str], bytearray]:
    """The text fields and the `file` part's bytes."""
    boundary = request.headers["content-type"].split("boundary=")[1].encode()
    parts = body.split(b"--" + boundary)
    fields: dict[str, str] = {}
    chunk = bytearray()
    for part in parts[1:-1]:
        head, _, value = part[2:].partition(b"\r\n\r\n")
        value = value[:-2]
        name = re.search(rb'name="([^"]*)"', head)
        if name is None:
            continue
        if name.group(1) == b"file":
            chunk = bytearray(value)
        else:
            fields[name.group(1).decode()] = value.decode()
    return fields, chunk
