"""Data collections (from `--collection`), data files and data units, Synapse-style.

Errors here are DRF serializer errors: `{"field": ["message"]}` without `detail`.
Collections are visible to every token; data files and units belong to their creator.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from synapse_tui.server.backend import Backend
from synapse_tui.server.errors import ApiError, json_response, not_found
from synapse_tui.server.store import COMPLETE, is_upload_id

REQUIRED = "This field is required."


class Collections:
    """The configured collections, ids from 1 in command-line order."""

    def __init__(self, collections: list[tuple[str, list[str]]]) -> None:
        self.by_id: dict[int, tuple[str, list[str]]] = {
            i: (name, list(specs)) for i, (name, specs) in enumerate(collections, start=1)
        }

    def render(self, collection_id: int) -> dict[str, Any]:
        name, specs = self.by_id[collection_id]
        return {
            "id": collection_id,
            "name": name,
            "file_specifications": [{"name": s, "is_required": True} for s in specs],
        }


async def list_collections(backend: Backend, request: Request) -> Response:
    await backend.owner(request)
    results = [backend.collections.render(i) for i in sorted(backend.collections.by_id)]
    return json_response(
        {"count": len(results), "next": None, "previous": None, "results": results}
    )


async def get_collection(backend: Backend, request: Request, collection_id: int) -> Response:
    await backend.owner(request)
    if collection_id not in backend.collections.by_id:
        raise not_found()
    return json_response(backend.collections.render(collection_id))


async def _json(request: Request) -> Any:
    body = await request.body()
    try:
        return json.loads(body) if body.strip() else {}
    except ValueError as exc:
        raise ApiError(400, f"JSON parse error - {exc}") from None


async def create_data_file(backend: Backend, request: Request) -> Response:
    """POST data_files/ {"chunked_upload": id}: register a complete upload of the caller."""
    owner = await backend.owner(request)
    data = await _json(request)
    if not isinstance(data, dict):
        raise ApiError(400, "Invalid data. Expected a dictionary.")
    upload_id = data.get("chunked_upload")
    if upload_id in (None, ""):
        raise ApiError.raw(400, {"chunked_upload": [REQUIRED]})
    upload_id = str(upload_id)
    upload = backend.store.get(upload_id) if is_upload_id(upload_id) else None
    if upload is None or upload.owner != owner:
        raise ApiError.raw(
            400, {"chunked_upload": [f'Invalid pk "{upload_id}" - object does not exist.']}
        )
    if upload.status != COMPLETE:
        raise ApiError.raw(400, {"chunked_upload": ["The chunked upload is not complete."]})
    record = await backend.run(backend.store.add_data_file, owner, upload, backend.now())
    body = {k: record[k] for k in ("id", "checksum", "size", "chunked_upload")}
    return json_response(body, status=201)


def _unit_errors(backend: Backend, owner: int, item: Any) -> dict[str, Any]:
    if not isinstance(item, dict):
        return {"non_field_errors": ["Invalid data. Expected a dictionary."]}
    errors: dict[str, Any] = {}
    collection_id = item.get("data_collection")
    specs: list[str] | None = None
    if collection_id is None:
        errors["data_collection"] = [REQUIRED]
    elif type(collection_id) is not int or collection_id not in backend.collections.by_id:
        errors["data_collection"] = [f'Invalid pk "{collection_id}" - object does not exist.']
    else:
        specs = backend.collections.by_id[collection_id][1]
    unit_files = item.get("files")
    if unit_files is None:
        errors["files"] = [REQUIRED]
    elif not isinstance(unit_files, dict) or not unit_files:
        errors["files"] = ["Expected a non-empty object of file specification to file."]
    else:
        file_errors: dict[str, list[str]] = {}
        for spec, entry in unit_files.items():
            problems = []
            if specs is not None and spec not in specs:
                problems.append(f'"{spec}" is not a file specification of this collection.')
            checksum = entry.get("checksum") if isinstance(entry, dict) else None
            if not isinstance(entry, dict) or not isinstance(entry.get("path", ""), str):
                problems.append('Expected {"checksum": ..., "path": ...}.')
            elif not isinstance(checksum, str) or not checksum:
                problems.append("checksum: " + REQUIRED)
            elif not backend.store.has_data_file(owner, checksum.lower()):
                problems.append(f"No data file with checksum {checksum}.")
            if problems:
                file_errors[spec] = problems
        if file_errors:
            errors["files"] = file_errors
    if not isinstance(item.get("meta", {}), dict):
        errors["meta"] = ["Expected a dictionary."]
    return errors


async def create_data_units(backend: Backend, request: Request) -> Response:
    """POST data_units/ with one unit or a list; all are created or none."""
    owner = await backend.owner(request)
    data = await _json(request)
    many = isinstance(data, list)
    items = data if many else [data]
    if many and not items:
        raise ApiError.raw(400, {"non_field_errors": ["This list may not be empty."]})
    errors = [_unit_errors(backend, owner, item) for item in items]
    if any(errors):
        raise ApiError.raw(400, errors if many else errors[0])
    units = [(item["data_collection"], item["files"], item.get("meta") or {}) for item in items]
    created = await backend.run(backend.store.add_data_units, owner, units, backend.now())
    return json_response(created if many else created[0], status=201)


async def list_data_units(backend: Backend, request: Request) -> Response:
    """GET data_units/[?data_collection=<id>]: the caller's units, oldest first."""
    owner = await backend.owner(request)
    raw = request.query_params.get("data_collection")
    collection: int | None = None
    if raw:
        if not raw.isdigit():
            raise ApiError.raw(400, {"data_collection": ["A valid integer is required."]})
        collection = int(raw)
    return json_response(backend.store.data_units(owner, collection))
