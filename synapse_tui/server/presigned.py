"""`storages/` and the presigned bulk-upload routes of `data_files/presigned_upload/`.

The shapes are the official SDK's (`synapse_sdk/clients/backend/bulk_upload/models.py`):
`upload/` takes up to 200 files and answers per file one presigned PUT URL, or, above
the multipart threshold, an S3 multipart upload (`upload_id`, `part_size`, one URL per
part); `confirm_upload/` takes file key, SHA1, size (and parts with ETags), completes
multipart uploads, reads back what landed (size and SHA1) and creates the data files.
`parts/` is this server's own addition: fresh URLs for the parts (or the single PUT) of
a key it handed out, so that a client resuming after the URLs expired keeps its parts.
Without `--storage` the server stores on local disk and offers no presigned storage:
`storages/` lists a `file_system` storage and clients use the chunked path.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from synapse_tui.server.backend import Backend
from synapse_tui.server.chunked import guarded
from synapse_tui.server.errors import ApiError, json_response, not_found
from synapse_tui.server.presigned_records import PresignedFile, PresignedRecords
from synapse_tui.server.storage_s3 import S3Storage, StorageError, StorageSpec, part_size_for

MAX_BATCH = 200  # files per upload/ or confirm_upload/ request, as the SDK sends them
FILENAME_MAX = 255
EXPIRATION_RANGE = (60, 86400)
DEFAULT_EXPIRATION = 3600
NO_STORAGE = "This server offers no presigned storage (start it with --storage s3://BUCKET)."
LOCAL_STORAGE = {
    "id": 1,
    "name": "local disk",
    "category": "internal",
    "provider": "file_system",
    "configuration": {},
    "is_default": True,
}


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat().replace("+00:00", "Z")


async def _json_object(request: Request) -> dict[str, Any]:
    body = await request.body()
    try:
        data = json.loads(body) if body.strip() else {}
    except ValueError as exc:
        raise ApiError(400, f"JSON parse error - {exc}") from None
    if not isinstance(data, dict):
        raise ApiError(400, "Invalid data. Expected a dictionary.")
    return data


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _expiration(data: dict[str, Any]) -> int:
    value = data.get("expiration", DEFAULT_EXPIRATION)
    low, high = EXPIRATION_RANGE
    if _int(value) is None or not low <= value <= high:
        raise ApiError.raw(
            400, {"expiration": [f"Ensure this is an integer from {low} to {high}."]}
        )
    return int(value)


def _batch(data: dict[str, Any]) -> list[Any]:
    files = data.get("files")
    if not isinstance(files, list) or not files:
        raise ApiError.raw(400, {"files": ["Expected a non-empty list."]})
    if len(files) > MAX_BATCH:
        raise ApiError.raw(400, {"files": [f"Ensure this list has at most {MAX_BATCH} items."]})
    return files


class PresignedService:
    """The storage and the records behind the routes of one app."""

    def __init__(self, backend: Backend, storage: S3Storage | None) -> None:
        self.backend = backend
        self.storage = storage
        self.records = PresignedRecords(backend.store)
        config = backend.config
        self.threshold = config.multipart_threshold
        self.part_size = config.part_size

    def _storage(self) -> S3Storage:
        if self.storage is None:
            raise ApiError(400, NO_STORAGE)
        return self.storage

    # -- storages/ ----------------------------------------------------------------------------

    def _storages(self) -> list[dict[str, Any]]:
        return [self.storage.describe(1) if self.storage else dict(LOCAL_STORAGE)]

    async def list_storages(self, request: Request) -> Response:
        await self.backend.owner(request)
        category = request.query_params.get("category")
        results = [s for s in self._storages() if category in (None, "", s["category"])]
        return json_response(
            {"count": len(results), "next": None, "previous": None, "results": results}
        )

    async def get_storage(self, request: Request) -> Response:
        await self.backend.owner(request)
        storage_id = request.path_params["storage_id"]
        found = [s for s in self._storages() if s["id"] == storage_id]
        if not found:
            raise not_found()
        return json_response(found[0])

    # -- upload/ ------------------------------------------------------------------------------

    async def upload(self, request: Request) -> Response:
        owner = await self.backend.owner(request, create=True)  # it records the grants
        storage = self._storage()
        data = await _json_object(request)
        expires = _expiration(data)
        wanted = [self._wanted(item) for item in _batch(data)]
        errors = [w for w in wanted if isinstance(w, dict)]
        if errors:
            raise ApiError.raw(400, {"files": [w if isinstance(w, dict) else {} for w in wanted]})
        now = self.backend.now()
        try:
            answer, rows = await self.backend.run(
                self._hand_out, storage, owner, wanted, expires, now
            )
        except StorageError as exc:
            raise ApiError(502, f"storage: {exc}") from None
        await self.backend.run(self.records.add, rows)
        return json_response({"files": answer, "expires_at": _iso(now + expires)})

    def _wanted(self, item: Any) -> tuple[str, int] | dict[str, list[str]]:
        if not isinstance(item, dict):
            return {"non_field_errors": ["Invalid data. Expected a dictionary."]}
        name, size = item.get("filename"), _int(item.get("size"))
        problems: dict[str, list[str]] = {}
        if not isinstance(name, str) or not name or len(name) > FILENAME_MAX:
            problems["filename"] = [f"Expected a name of 1 to {FILENAME_MAX} characters."]
        limit = self.backend.config.max_bytes
        if size is None or size < 0:
            problems["size"] = ["Expected a non-negative integer."]
        elif limit is not None and size > limit:
            problems["size"] = [f"Size of file exceeds the limit ({limit} bytes)"]
        return problems if problems else (str(name), int(size or 0))

    def _hand_out(
        self,
        storage: S3Storage,
        owner: int,
        wanted: list[Any],
        expires: int,
        now: float,
    ) -> tuple[list[dict[str, Any]], list[PresignedFile]]:
        answer, rows = [], []
        for name, size in wanted:
            key = storage.key_for(str(uuid.uuid4()))
            entry: dict[str, Any] = {"filename": name, "file_key": key}
            upload_id = part_size = None
            if size > self.threshold:
                part_size = part_size_for(size, self.part_size)
                upload_id = storage.create_multipart(key)
                count = max(1, -(-size // part_size))
                entry["multipart"] = {
                    "upload_id": upload_id,
                    "part_size": part_size,
                    "parts": self._part_urls(storage, key, upload_id, range(1, count + 1), expires),
                }
            else:
                entry["presigned_url"] = storage.presign_put(key, expires)
            answer.append(entry)
            rows.append(
                PresignedFile(key, owner, name, size, upload_id, part_size, now, None, None)
            )
        return answer, rows

    @staticmethod
    def _part_urls(
        storage: S3Storage, key: str, upload_id: str, numbers: Any, expires: int
    ) -> list[dict[str, Any]]:
        return [
            {"part_number": n, "presigned_url": storage.presign_part(key, upload_id, n, expires)}
            for n in numbers
        ]

    # -- parts/ (fresh URLs for a key handed out before) --------------------------------------

    async def refresh(self, request: Request) -> Response:
        owner = await self.backend.owner(request)
        storage = self._storage()
        data = await _json_object(request)
        expires = _expiration(data)
        record = self._own(owner, data.get("file_key"))
        if record is None or record.data_file is not None:
            raise ApiError.raw(400, {"file_key": ["Unknown or already confirmed file key."]})
        now = self.backend.now()
        body: dict[str, Any] = {"file_key": record.file_key, "expires_at": _iso(now + expires)}
        if record.upload_id is None:
            body["presigned_url"] = storage.presign_put(record.file_key, expires)
            return json_response(body)
        assert record.part_size is not None
        count = max(1, -(-record.size // record.part_size))
        numbers = data.get("part_numbers") or list(range(1, count + 1))
        if not isinstance(numbers, list) or not all(
            _int(n) is not None and 1 <= n <= count for n in numbers
        ):
            raise ApiError.raw(400, {"part_numbers": [f"Expected part numbers from 1 to {count}."]})
        body["multipart"] = {
            "upload_id": record.upload_id,
            "part_size": record.part_size,
            "parts": self._part_urls(storage, record.file_key, record.upload_id, numbers, expires),
        }
        return json_response(body)

    def _own(self, owner: int, file_key: Any) -> PresignedFile | None:
        record = self.records.get(file_key) if isinstance(file_key, str) else None
        return record if record is not None and record.owner == owner else None

    # -- confirm_upload/ ----------------------------------------------------------------------

    async def confirm(self, request: Request) -> Response:
        owner = await self.backend.owner(request)
        storage = self._storage()
        data = await _json_object(request)
        items = _batch(data)
        results = await asyncio.gather(
            *(self.backend.run(self._confirm_one, storage, owner, item) for item in items)
        )
        created = sum(1 for r in results if r["success"])
        return json_response(
            {"results": results, "created_count": created, "failed_count": len(results) - created}
        )

    def _confirm_one(self, storage: S3Storage, owner: int, item: Any) -> dict[str, Any]:
        key = item.get("file_key") if isinstance(item, dict) else None
        claimed = item.get("checksum") if isinstance(item, dict) else None
        result: dict[str, Any] = {
            "file_key": key if isinstance(key, str) else "",
            "checksum": claimed if isinstance(claimed, str) else "",
            "data_file_id": None,
            "success": False,
            "error": None,
        }
        try:
            result["data_file_id"] = self._register(storage, owner, item)
            result["success"] = True
        except (StorageError, ValueError) as exc:
            result["error"] = str(exc)
        return result

    def _register(self, storage: S3Storage, owner: int, item: Any) -> int:
        if not isinstance(item, dict):
            raise ValueError("expected an object with file_key, checksum and size")
        record = self._own(owner, item.get("file_key"))
        if record is None:
            raise ValueError("unknown file key")
        claimed = item.get("checksum")
        if not isinstance(claimed, str) or len(claimed) != 40:
            raise ValueError("checksum: expected the file's SHA1 (40 hex digits)")
        claimed = claimed.lower()
        if record.data_file is not None:  # confirmed before (a lost answer): same data file
            if record.checksum != claimed:
                raise ValueError("already confirmed with another checksum")
            return record.data_file
        if _int(item.get("size")) != record.size:
            raise ValueError(f"size differs from the {record.size} bytes announced")
        if record.upload_id is not None:
            self._complete(storage, record, item.get("multipart"))
        landed = storage.read_back(record.file_key, record.size)
        if landed is None:
            raise ValueError("nothing was uploaded to this key")
        if isinstance(landed, int):
            raise ValueError(f"storage holds {landed} bytes, not {record.size}")
        if landed != claimed:
            storage.delete(record.file_key)
            raise ValueError(f"checksum mismatch: storage holds SHA1 {landed}; object deleted")
        sha1, length = landed, record.size
        source = f"s3://{storage.spec.bucket}/{record.file_key}"
        store = self.backend.store
        data_file = store.add_stored_data_file(owner, source, sha1, length, self.backend.now())
        self.records.confirmed(record.file_key, data_file, sha1)
        return data_file

    @staticmethod
    def _complete(storage: S3Storage, record: PresignedFile, multipart: Any) -> None:
        if not isinstance(multipart, dict) or multipart.get("upload_id") != record.upload_id:
            raise ValueError("multipart: upload_id does not match the file key's")
        assert record.part_size is not None
        count = max(1, -(-record.size // record.part_size))
        parts: Any = multipart.get("parts")
        try:
            listed = sorted((int(p["part_number"]), str(p["etag"])) for p in parts)
        except (TypeError, KeyError, ValueError):
            raise ValueError("multipart: parts must be a list of part_number and etag") from None
        if [n for n, _ in listed] != list(range(1, count + 1)):
            raise ValueError(f"multipart: expected parts 1 to {count}, each once")
        try:
            storage.complete_multipart(record.file_key, record.upload_id or "", listed)
        except StorageError:
            # Completed by an earlier confirm whose answer was lost: the object is there.
            if storage.size_of(record.file_key) != record.size:
                raise


def routes(backend: Backend) -> list[BaseRoute]:
    """The routes, bound to the storage `--storage` names (checked here, at start-up)."""
    config = backend.config
    storage = None
    if config.storage:
        storage = S3Storage(StorageSpec.parse(config.storage), config.s3_endpoint)
        storage.check()
    service = PresignedService(backend, storage)

    def bind(handler: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            return await guarded(handler(request))

        return endpoint

    base = "/data_files/presigned_upload"
    return [
        Route("/storages/", bind(service.list_storages), methods=["GET"]),
        Route("/storages/{storage_id:int}/", bind(service.get_storage), methods=["GET"]),
        Route(f"{base}/upload/", bind(service.upload), methods=["POST"]),
        Route(f"{base}/confirm_upload/", bind(service.confirm), methods=["POST"]),
        Route(f"{base}/parts/", bind(service.refresh), methods=["POST"]),
    ]
