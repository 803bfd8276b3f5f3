"""The `chunked_upload/` endpoints, as drf-chunked-upload 0.6.0 answers them, minus its flaws.

Headers, ownership, expiry, the writer lock and the offset are checked before a
byte of the body is consumed. The offset moves only after the chunk is fsynced,
in a SQLite transaction. Empty files: `Content-Range: bytes */0` (or the alias
`bytes 0-0/0`) with an empty `file` part creates a 0-byte upload, or POST the
whole (empty) file with its md5.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import sqlite3
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, Response

from synapse_tui.server import files
from synapse_tui.server.backend import (
    INSUFFICIENT_STORAGE,
    Backend,
    database_full,
    disk_full,
    warn_full,
)
from synapse_tui.server.errors import ApiError, json_response, not_found
from synapse_tui.server.ids import new_upload_id
from synapse_tui.server.multipart import boundary_of
from synapse_tui.server.receive import Received, read_small_body, receive_file
from synapse_tui.server.store import COMPLETE, UPLOADING, Upload

# At most 19 digits each, and below 2**63 (SQLite's integers): int() of 5,000 digits
# raises ValueError, a 20-digit one overflows the row.
_RANGE = re.compile(r"bytes ([0-9]{1,19})-([0-9]{1,19})/([0-9]{1,19})")
_RANGE_NUMBER = re.compile(r"[0-9]{1,19}")
_MAX_OFFSET = (1 << 63) - 1
_EMPTY_RANGE = re.compile(r"bytes \*/0")
_MULTIPART_SLACK = 1 << 20  # room for boundaries and text fields around the file part
FILENAME_MAX = 255

HEADER_ERROR = "Error in request headers"
NO_FILE = "No chunk file was submitted"
MD5_REQUIRED = "Checksum of type 'md5' is required"
MD5_MISMATCH = "checksum does not match"


def iso(ts: float | None) -> str | None:
    """DRF's rendering of an aware UTC datetime."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=UTC).isoformat().replace("+00:00", "Z")


def render(backend: Backend, request: Request, upload: Upload) -> dict[str, Any]:
    url = f"{backend.api_base(request)}/chunked_upload/{upload.id}/"
    return {
        "id": upload.id,
        "url": url,
        "file": url + "file/",
        "filename": upload.filename,
        "offset": upload.offset,
        "size": upload.size,
        "checksum": upload.checksum,
        "created_at": iso(upload.created_at),
        "status": upload.status,
        "completed_at": iso(upload.completed_at),
        "expires_at": iso(upload.expires_at(backend.config.expire_after)),
        "user": upload.owner,
    }


def parse_range(value: str | None) -> tuple[int, int, int]:
    """(start, chunk length, total) of a Content-Range; `end < total` is required."""
    if value is None:
        raise ApiError(400, HEADER_ERROR)
    if _EMPTY_RANGE.fullmatch(value):
        return 0, 0, 0
    match = _RANGE.fullmatch(value)
    if not match:
        raise ApiError(400, HEADER_ERROR)
    start, end, total = (int(g) for g in match.groups())
    if total > _MAX_OFFSET:
        raise ApiError(400, HEADER_ERROR)
    if total == 0 and start == 0 and end == 0:
        return 0, 0, 0  # alias of `bytes */0`: there is no byte 0 in an empty file
    if end < start:
        raise ApiError(400, HEADER_ERROR)
    if end >= total:
        raise ApiError(400, f"End of chunk exceeds reported total ({total} bytes)")
    return start, end - start + 1, total


def filename_errors(fields: dict[str, str]) -> list[str]:
    """DRF CharField(max_length=255) validation of the `filename` field."""
    if "filename" not in fields:
        return ["This field is required."]
    name = fields["filename"].strip()
    if "\x00" in name:
        return ["Null characters are not allowed."]
    if not name:
        return ["This field may not be blank."]
    if len(name) > FILENAME_MAX:
        return [f"Ensure this field has no more than {FILENAME_MAX} characters."]
    return []


def _check_limit(backend: Backend, total: int) -> None:
    limit = backend.config.max_bytes
    if limit is not None and total > limit:
        raise ApiError(413, f"Size of file exceeds the limit ({limit} bytes)")


async def _stream(
    backend: Backend,
    request: Request,
    path: Path,
    start: int,
    limit: int,
    md5: Any,
    validate: Any,
) -> Received:
    boundary = boundary_of(request.headers.get("content-type"))
    if boundary is None:
        raise ApiError(400, NO_FILE)
    try:
        return await receive_file(
            backend.executor, request, boundary, path, start, limit, md5, validate
        )
    except OSError as exc:
        if disk_full(exc):
            raise ApiError(507, INSUFFICIENT_STORAGE) from None
        raise


def _size_check(expected: int) -> Any:
    def validate(received: Received) -> None:
        if not received.file_seen:
            raise ApiError(400, NO_FILE)
        if received.size != expected:
            raise ApiError(
                400,
                f"File size doesn't match headers: file size is {received.size}"
                f" but {expected} reported",
            )

    return validate


async def put_chunk(backend: Backend, request: Request, upload_id: str | None) -> Response:
    """PUT chunked_upload/ (first chunk, creates) or PUT chunked_upload/<id>/ (next chunk)."""
    owner = await backend.owner(request)
    start, length, total = parse_range(request.headers.get("content-range"))
    _check_limit(backend, total)
    if upload_id is None:
        return await _create(backend, request, start, length, total)
    upload = backend.find(owner, upload_id)
    await backend.check_writable(upload)
    backend.acquire(upload.id)
    commit: asyncio.Future[Any] | None = None
    try:
        # The lock was free, so no chunk is between write and commit: the row is current.
        if total != upload.size:
            raise ApiError(
                400,
                "Total size does not match the upload",
                expected_total=upload.size,
                provided_total=total,
            )
        if start != upload.offset:
            raise ApiError(
                400, "Offsets do not match", expected_offset=upload.offset, provided_offset=start
            )
        backend.check_space(total - start)
        md5 = backend.sessions.hash_at(upload.id, upload.offset)
        if md5 is None:
            backend.ensure_catch_up(upload.id)
        check = _size_check(length)
        path = backend.store.path_for(upload.id)
        await _stream(backend, request, path, start, length, md5, check)
        now = backend.now()
        commit = backend.store.advance(upload.id, start, start + length, now)
        moved = await asyncio.shield(commit)
        if not moved:  # expired by a sweep mid-request, or changed behind our back
            raise ApiError(410, "Upload has expired")
        if md5 is not None:
            backend.sessions.remember(upload.id, start + length, md5)
        else:  # hash this chunk from disk too (the catch-up may have stopped short of it)
            backend.ensure_catch_up(upload.id)
        # The row as the update left it (it matched the old offset, so nothing else moved).
        fresh = replace(upload, offset=start + length, updated_at=now)
        return json_response(render(backend, request, fresh))
    finally:
        _release_after(backend, upload.id, commit)


def _release_after(backend: Backend, upload_id: str, commit: asyncio.Future[Any] | None) -> None:
    """Free the upload, but only once a commit still running (request cancelled) has landed."""
    if commit is None or commit.done():
        backend.sessions.release(upload_id)
    else:
        commit.add_done_callback(lambda _f: backend.sessions.release(upload_id))


async def _create(
    backend: Backend, request: Request, start: int, length: int, total: int
) -> Response:
    if start != 0:
        raise ApiError(400, "Offsets do not match", expected_offset=0, provided_offset=start)
    backend.check_space(total)
    upload_id = new_upload_id()
    path = backend.store.path_for(upload_id)
    backend.acquire(upload_id)
    try:
        size_check = _size_check(length)
        fields: dict[str, str] = {}

        def validate(received: Received) -> None:
            size_check(received)
            errors = filename_errors(received.fields)
            if errors:
                raise ApiError(400, {"filename": errors})
            fields.update(received.fields)

        md5 = hashlib.md5()
        try:
            await _stream(backend, request, path, 0, length, md5, validate)
            owner = await backend.owner(request, create=True)  # its first upload makes the row
        except BaseException:
            files.remove(path)
            raise
        now = backend.now()
        upload = Upload(
            upload_id, owner, fields["filename"].strip(), total, length, UPLOADING,
            now, now, None, None, False,
        )  # fmt: skip
        await _insert(backend, upload, path)
        backend.sessions.remember(upload_id, length, md5)
        return json_response(render(backend, request, upload))
    finally:
        backend.sessions.release(upload_id)


async def _insert(backend: Backend, upload: Upload, path: Path) -> None:
    commit = backend.store.insert(upload)
    try:
        await asyncio.shield(commit)
    except asyncio.CancelledError:
        # The row may still land; its file goes only if it does not.
        def drop_unless_recorded(done: asyncio.Future[None]) -> None:
            if done.cancelled() or done.exception() is not None:
                files.remove(path)

        commit.add_done_callback(drop_unless_recorded)
        raise
    except BaseException:
        files.remove(path)
        raise


async def post(backend: Backend, request: Request, upload_id: str | None) -> Response:
    """POST chunked_upload/<id>/ finalizes; POST chunked_upload/ takes a whole file."""
    owner = await backend.owner(request)
    if upload_id is None:
        return await _post_whole(backend, request)
    fields = await read_small_body(request)
    checksum = fields.get("md5")
    if not checksum or not isinstance(checksum, str):
        raise ApiError(400, MD5_REQUIRED)
    upload = backend.find(owner, upload_id)
    await backend.check_writable(upload)
    backend.acquire(upload.id)
    commit: asyncio.Future[Any] | None = None
    try:
        if upload.offset != upload.size:
            raise ApiError(
                400,
                f"Upload is incomplete: {upload.offset} of {upload.size} bytes received",
                offset=upload.offset,
                size=upload.size,
            )
        digest = (await backend.md5_for(upload)).hexdigest()
        if checksum.strip().lower() != digest:
            raise ApiError(400, MD5_MISMATCH)
        now = backend.now()
        commit = backend.store.complete(upload.id, digest, now)
        if not await asyncio.shield(commit):
            raise ApiError(410, "Upload has expired")
        backend.sessions.forget(upload.id)
        fresh = replace(upload, status=COMPLETE, completed_at=now, checksum=digest)
        return json_response(render(backend, request, fresh))
    finally:
        _release_after(backend, upload.id, commit)


async def _post_whole(backend: Backend, request: Request) -> Response:
    limit = backend.config.max_bytes
    declared = request.headers.get("content-length", "")
    body_size = int(declared) if _RANGE_NUMBER.fullmatch(declared) else None
    if limit is not None and body_size is not None and body_size > limit + _MULTIPART_SLACK:
        raise ApiError(413, f"Size of file exceeds the limit ({limit} bytes)")
    if body_size is not None:
        backend.check_space(body_size)
    upload_id = new_upload_id()
    path = backend.store.path_for(upload_id)
    backend.acquire(upload_id)
    md5 = hashlib.md5()
    seen: dict[str, Any] = {}

    def validate(received: Received) -> None:
        if not received.file_seen:
            raise ApiError(400, NO_FILE)
        _check_limit(backend, received.size)
        errors = filename_errors(received.fields)
        if errors:
            raise ApiError(400, {"filename": errors})
        checksum = received.fields.get("md5")
        if not checksum:
            raise ApiError(400, MD5_REQUIRED)
        digest = received.md5.hexdigest()
        if checksum.strip().lower() != digest:
            raise ApiError(400, MD5_MISMATCH)
        seen.update(received.fields, size=received.size, digest=digest)

    try:
        cap = sys.maxsize if limit is None else limit
        try:
            await _stream(backend, request, path, 0, cap, md5, validate)
            owner = await backend.owner(request, create=True)
        except BaseException:
            files.remove(path)
            raise
        now = backend.now()
        upload = Upload(
            upload_id, owner, seen["filename"].strip(), seen["size"], seen["size"], COMPLETE,
            now, now, now, seen["digest"], False,
        )  # fmt: skip
        await _insert(backend, upload, path)
        return json_response(render(backend, request, upload))
    finally:
        backend.sessions.release(upload_id)


async def get(backend: Backend, request: Request, upload_id: str | None) -> Response:
    """GET chunked_upload/ lists the caller's uploads; GET chunked_upload/<id>/ shows one."""
    owner = await backend.owner(request)
    if upload_id is None:
        # `?filename=`: an extension (drf-chunked-upload lists every upload whatever the
        # query), so a client recovering one upload among a million reads a few.
        uploads = backend.store.list_for(owner, request.query_params.get("filename"))
        return json_response([render(backend, request, u) for u in uploads])
    return json_response(render(backend, request, backend.find(owner, upload_id)))


async def download(backend: Backend, request: Request, upload_id: str) -> Response:
    """GET chunked_upload/<id>/file/: the bytes of a complete upload, to its owner only."""
    owner = await backend.owner(request)
    upload = backend.find(owner, upload_id)
    path = backend.store.path_for(upload.id)
    if upload.status != COMPLETE or files.size_of(path) is None:
        raise not_found()
    # The name is only a download hint: no folders, whatever the client called it.
    name = upload.filename.replace("\\", "/").rsplit("/", 1)[-1] or upload.id
    return FileResponse(path, media_type="application/octet-stream", filename=name)


async def guarded(coro: Any) -> Response:
    """Run a handler: ApiError -> its JSON; a vanished client -> nothing useful to send;
    a full disk, even where only SQLite noticed it (its commit failed) -> 507."""
    try:
        response: Response = await coro
        return response
    except ApiError as error:
        return error.response()
    except ClientDisconnect:
        return JSONResponse({"detail": "Client disconnected"}, status_code=400)
    except (sqlite3.OperationalError, OSError) as exc:
        if not (disk_full(exc) or database_full(exc)):
            raise
        warn_full(exc)
        return ApiError(507, INSUFFICIENT_STORAGE).response()
