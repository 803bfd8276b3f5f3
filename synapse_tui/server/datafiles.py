"""`data_files/`: register an upload (`{"chunked_upload": id}`) or take a file directly (the
SDK's multipart `file` for files up to 50 MiB), checksum lookups, and signed downloads.

Errors are DRF serializer errors (`{"field": ["message"]}`); a data file is its creator's.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response

from synapse_tui.server import bodies, files
from synapse_tui.server.backend import Backend, disk_full
from synapse_tui.server.chunked import FILENAME_MAX, _insert, iso
from synapse_tui.server.errors import ApiError, json_response, not_found
from synapse_tui.server.multipart import boundary_of
from synapse_tui.server.receive import Received, receive_file
from synapse_tui.server.store import COMPLETE, Upload, is_upload_id

REQUIRED = "This field is required."
DIRECT_MAX = 1 << 30  # largest file taken as a multipart `file` (the SDK sends <= 50 MiB)
MULTIPART_SLACK = 1 << 20  # boundaries and text fields around the file part
CHECKSUMS_MAX = 10_000  # per verify_checksums request (the SDK sends batches of 1,000)
CHECKSUM_CHARS = 128
FORBIDDEN = "Invalid or expired signature."
STORAGE_URL_TTL = 300  # seconds the storage's own URL (a redirect's target) stays valid


def render(backend: Backend, request: Request, record: dict[str, Any]) -> dict[str, Any]:
    """A data file as DRF would answer it; `file` is a signed URL of its bytes."""
    name = record.get("filename") or f"file-{record['id']}"
    return {
        "id": record["id"],
        "file": backend.collections.signer.url(
            backend.api_base(request), record["id"], name, backend.now()
        ),
        "file_name_original": name,
        "checksum": record["checksum"],
        "size": record["size"],
        "chunked_upload": record["chunked_upload"],
        "created_at": iso(record["created_at"]),
        "updated_at": iso(record["created_at"]),
    }


async def create(backend: Backend, request: Request) -> Response:
    """POST data_files/: a multipart `file`, or JSON `{"chunked_upload": <complete upload>}`."""
    multipart = boundary_of(request.headers.get("content-type")) is not None
    owner = await backend.owner(request)
    if multipart:
        upload = await _receive(backend, request)
        owner = upload.owner  # the file stored made the owner's row
    else:
        data = await bodies.read_json(backend, request)
        if not isinstance(data, dict):
            raise ApiError(400, "Invalid data. Expected a dictionary.")
        upload = _complete_upload(backend, owner, data.get("chunked_upload"))
    record = await backend.run(backend.store.add_data_file, owner, upload, backend.now())
    return json_response(render(backend, request, record), status=201)


def _complete_upload(backend: Backend, owner: int, upload_id: Any) -> Upload:
    if upload_id in (None, ""):
        raise ApiError.raw(400, {"chunked_upload": [REQUIRED]})
    if not isinstance(upload_id, str | int) or isinstance(upload_id, bool):
        raise ApiError.raw(400, {"chunked_upload": ["Incorrect type. Expected pk value."]})
    upload_id = str(upload_id)
    upload = backend.store.get(upload_id) if is_upload_id(upload_id) else None
    if upload is None or upload.owner != owner:
        raise ApiError.raw(
            400, {"chunked_upload": [f'Invalid pk "{upload_id}" - object does not exist.']}
        )
    if upload.status != COMPLETE:
        raise ApiError.raw(400, {"chunked_upload": ["The chunked upload is not complete."]})
    return upload


def _limit(backend: Backend) -> int:
    configured = backend.config.max_bytes
    return DIRECT_MAX if configured is None else min(configured, DIRECT_MAX)


async def _receive(backend: Backend, request: Request) -> Upload:
    """Stream the `file` part to a new complete upload of the caller (nothing kept if refused)."""
    limit = _limit(backend)
    too_large = f"Size of file exceeds the limit ({limit} bytes)"
    declared = request.headers.get("content-length", "")
    body_size = int(declared) if declared.isdigit() else None
    if body_size is not None and body_size > limit + MULTIPART_SLACK:
        raise ApiError(413, too_large)
    backend.check_space(body_size or 0)
    upload_id = str(uuid.uuid4())
    backend.acquire(upload_id)
    seen: dict[str, Any] = {}

    def validate(received: Received) -> None:
        if not received.file_seen:
            raise ApiError.raw(400, {"file": ["No file was submitted."]})
        if received.size > limit:
            raise ApiError(413, too_large)
        name = (received.file_name or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
        if "\x00" in name or len(name) > FILENAME_MAX:
            raise ApiError.raw(400, {"file": ["The file name is not valid."]})
        seen.update(name=name or "file", size=received.size, digest=received.md5.hexdigest())

    path = backend.store.path_for(upload_id)
    try:
        try:
            # Past `limit` bytes are counted, not stored; validate then refuses the file.
            await receive_file(
                backend.executor, request, boundary_of(request.headers["content-type"]) or b"",
                path, 0, limit, hashlib.md5(), validate,
            )  # fmt: skip
            # A file to store makes the owner's row (never a refused one: a tenant header
            # is the client's to choose).
            owner = await backend.owner(request, create=True)
        except OSError as exc:
            files.remove(path)
            if disk_full(exc):
                raise ApiError(507, "Insufficient storage") from None
            raise
        except BaseException:
            files.remove(path)
            raise
        now = backend.now()
        upload = Upload(
            upload_id, owner, seen["name"], seen["size"], seen["size"], COMPLETE,
            now, now, now, seen["digest"], False,
        )  # fmt: skip
        await _insert(backend, upload, path)
        return upload
    finally:
        backend.sessions.release(upload_id)


async def verify_checksums(backend: Backend, request: Request) -> Response:
    """POST data_files/verify_checksums/ {"checksums": [...]}: which the caller already has."""
    owner = await backend.owner(request)
    data = await bodies.read_json(backend, request)
    checksums = data.get("checksums") if isinstance(data, dict) else None
    if not isinstance(data, dict):
        raise ApiError(400, "Invalid data. Expected a dictionary.")
    if checksums is None:
        raise ApiError.raw(400, {"checksums": [REQUIRED]})
    if not isinstance(checksums, list):
        kind = type(checksums).__name__
        raise ApiError.raw(400, {"checksums": [f'Expected a list of items but got type "{kind}".']})
    if len(checksums) > CHECKSUMS_MAX:
        raise ApiError.raw(
            400, {"checksums": [f"Ensure this field has no more than {CHECKSUMS_MAX} elements."]}
        )
    bad = [i for i, c in enumerate(checksums) if not isinstance(c, str) or not c
           or len(c) > CHECKSUM_CHARS]  # fmt: skip
    if bad:
        raise ApiError.raw(400, {"checksums": {str(i): ["Not a valid checksum."] for i in bad}})
    wanted = {c.strip().lower(): c for c in checksums}
    found = await backend.run(backend.store.files_by_checksum, owner, list(wanted))
    existing = [wanted[c] for c in wanted if c in found]
    return json_response({"checksums": checksums, "existing_checksums": existing})


async def download(backend: Backend, request: Request, file_id: int, name: str) -> Response:
    """GET data_files/<id>/download/<name>?expires=..&signature=..: no token, the signature
    opens this one file until it expires (403 otherwise; `name` is only for the client)."""
    query = request.query_params
    if not backend.collections.signer.valid(
        file_id, query.get("expires"), query.get("signature"), backend.now()
    ):
        raise ApiError(403, FORBIDDEN)
    record = backend.store.data_file(file_id)
    if record is None:
        raise not_found()
    storage = backend.object_storage
    key = storage.source_key(record["chunked_upload"]) if storage is not None else None
    if key is not None:  # a presigned upload's: its bytes are in the object storage
        url = await backend.run(storage.presign_get, key, STORAGE_URL_TTL)
        return RedirectResponse(url, status_code=307)
    if not is_upload_id(record["chunked_upload"]):
        raise not_found()
    path = backend.store.path_for(record["chunked_upload"])
    if files.size_of(path) is None:
        raise not_found()
    filename = record.get("filename") or f"file-{file_id}"
    filename = filename.replace("\\", "/").rsplit("/", 1)[-1] or f"file-{file_id}"
    return FileResponse(path, media_type="application/octet-stream", filename=filename)
