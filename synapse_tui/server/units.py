"""`data_units/`: create (one or a list, all or none), list (DRF pages) and show data units.

A unit's `files` answer `{spec: {checksum, path, url, is_primary, file_type,
file_name_original, size, id}}`: `url` is a signed, time-limited URL of the bytes (the SDK
downloads it without a token). `files` are always expanded (`?expand=files` is accepted).
Validation and rendering run in a worker thread: a list of thousands of units is work.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from synapse_tui.server import bodies
from synapse_tui.server.backend import Backend
from synapse_tui.server.chunked import iso
from synapse_tui.server.collections import page, page_bounds
from synapse_tui.server.errors import ApiError, json_response, not_found

REQUIRED = "This field is required."
UNITS_MAX = 10_000  # units per request (the SDK sends batches of 1,000)
GROUPS_MAX = 16  # levels of a unit's group path
GROUP_CHARS = 255
PATH_CHARS = 4096


def _group_errors(groups: Any) -> list[str]:
    if groups is None:
        return []
    if not isinstance(groups, list):
        return [f'Expected a list of items but got type "{type(groups).__name__}".']
    if len(groups) > GROUPS_MAX:
        return [f"Ensure this field has no more than {GROUPS_MAX} elements."]
    if not all(isinstance(g, str) and g.strip() and len(g) <= GROUP_CHARS for g in groups):
        return [f"Each group must be a non-blank string of at most {GROUP_CHARS} characters."]
    return []


def _file_problems(backend: Backend, collection: int | None, spec: str, entry: Any) -> list[str]:
    problems = []
    if collection is not None and backend.collections.spec(collection, spec) is None:
        problems.append(f'"{spec}" is not a file specification of this collection.')
    if not isinstance(entry, dict):
        return [*problems, 'Expected {"checksum": ..., "path": ...}.']
    path = entry.get("path", "")
    if not isinstance(path, str) or len(path) > PATH_CHARS:
        problems.append(f"path: Expected a string of at most {PATH_CHARS} characters.")
    checksum = entry.get("checksum")
    if not isinstance(checksum, str) or not checksum.strip():
        problems.append("checksum: " + REQUIRED)
    return problems


def _unit_errors(backend: Backend, item: Any, known: dict[str, dict[str, Any]]) -> dict[str, Any]:
    if not isinstance(item, dict):
        return {"non_field_errors": ["Invalid data. Expected a dictionary."]}
    errors: dict[str, Any] = {}
    collection = item.get("data_collection")
    if collection is None:
        errors["data_collection"] = [REQUIRED]
        collection = None
    elif type(collection) is not int or collection not in backend.collections.by_id:
        errors["data_collection"] = [f'Invalid pk "{collection}" - object does not exist.']
        collection = None
    unit_files = item.get("files")
    if unit_files is None:
        errors["files"] = [REQUIRED]
    elif not isinstance(unit_files, dict) or not unit_files:
        errors["files"] = ["Expected a non-empty object of file specification to file."]
    else:
        file_errors: dict[str, list[str]] = {}
        for spec, entry in unit_files.items():
            problems = _file_problems(backend, collection, spec, entry)
            if not problems and entry["checksum"].strip().lower() not in known:
                problems.append(f"No data file with checksum {entry['checksum']}.")
            if problems:
                file_errors[spec] = problems
        if file_errors:
            errors["files"] = file_errors
    if not isinstance(item.get("meta") or {}, dict):
        errors["meta"] = ["Expected a dictionary."]
    group_errors = _group_errors(item.get("groups"))
    if group_errors:
        errors["groups"] = group_errors
    return errors


def _checksums(items: list[Any]) -> list[str]:
    out = []
    for item in items:
        unit_files = item.get("files") if isinstance(item, dict) else None
        for entry in unit_files.values() if isinstance(unit_files, dict) else ():
            checksum = entry.get("checksum") if isinstance(entry, dict) else None
            if isinstance(checksum, str) and len(checksum) <= 128:
                out.append(checksum.strip().lower())
    return out


def _create(backend: Backend, owner: int, data: Any) -> tuple[Any, list[dict[str, Any]]]:
    """Validate and insert (in a worker thread): (errors or None, created units)."""
    many = isinstance(data, list)
    items = data if many else [data]
    if many and not items:
        raise ApiError.raw(400, {"non_field_errors": ["This list may not be empty."]})
    if len(items) > UNITS_MAX:
        raise ApiError.raw(
            400, {"non_field_errors": [f"Ensure this list has at most {UNITS_MAX} elements."]}
        )
    known = backend.store.files_by_checksum(owner, _checksums(items))
    errors = [_unit_errors(backend, item, known) for item in items]
    if any(errors):
        raise ApiError.raw(400, errors if many else errors[0])
    units = []
    for item in items:
        unit_files = {
            spec: {
                "checksum": entry["checksum"],
                "path": entry.get("path", ""),
                "data_file": known[entry["checksum"].strip().lower()]["id"],
            }
            for spec, entry in item["files"].items()
        }
        units.append(
            (item["data_collection"], unit_files, item.get("meta") or {}, item.get("groups") or [])
        )
    return many, backend.store.add_data_units(owner, units, backend.now())


def render_units(
    backend: Backend, owner: int, api_base: str, units: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Units as the SDK reads them; each file entry with its signed URL."""
    entries = [e for u in units for e in u["files"].values()]
    by_id = backend.store.files_by_id([e["data_file"] for e in entries if "data_file" in e])
    # Units made before data file ids were kept: their checksum names the file.
    legacy = [e["checksum"].strip().lower() for e in entries if "data_file" not in e]
    by_checksum = backend.store.files_by_checksum(owner, legacy) if legacy else {}
    now = backend.now()
    out = []
    for unit in units:
        files: dict[str, Any] = {}
        for spec_name, entry in unit["files"].items():
            record = by_id.get(entry.get("data_file", -1)) or by_checksum.get(
                entry["checksum"].strip().lower()
            )
            spec = (
                backend.collections.spec(unit["data_collection"], spec_name)
                if unit["data_collection"] in backend.collections.by_id
                else None
            )
            name = (record or {}).get("filename") or entry.get("path", "").replace("\\", "/")
            name = name.rsplit("/", 1)[-1] or spec_name
            files[spec_name] = {
                "id": record["id"] if record else None,
                "checksum": entry["checksum"],
                "path": entry.get("path", ""),
                "size": record["size"] if record else None,
                "file_name_original": name,
                "file_type": spec.file_type if spec else "data",
                "is_primary": bool(spec and spec.is_primary),
                "url": backend.collections.signer.url(api_base, record["id"], name, now)
                if record
                else None,
            }
        groups = unit["groups"]
        out.append(
            {
                "id": unit["id"],
                "data_collection": unit["data_collection"],
                "files": files,
                "meta": unit["meta"],
                "groups": groups,
                "group": groups[-1] if groups else None,
                "created": iso(unit["created_at"]),
            }
        )
    return out


async def create_units(backend: Backend, request: Request) -> Response:
    """POST data_units/ with one unit or a list; all are created or none."""
    owner = await backend.owner(request)
    data = await bodies.read_json(backend, request)
    many, created = await backend.run(_create, backend, owner, data)
    rendered = await backend.run(render_units, backend, owner, backend.api_base(request), created)
    return await bodies.answer(backend, rendered if many else rendered[0], status=201)


def _collection_filter(request: Request) -> int | None:
    raw = request.query_params.get("data_collection")
    if not raw:
        return None
    if not raw.isdigit() or len(raw) > 12:
        raise ApiError.raw(400, {"data_collection": ["A valid integer is required."]})
    return int(raw)


def _page_of_units(
    backend: Backend, owner: int, api_base: str, collection: int | None, number: int, size: int
) -> tuple[int, list[dict[str, Any]]]:
    count = backend.store.count_units(owner, collection)
    units = backend.store.data_units(owner, collection, (number - 1) * size, size)
    return count, render_units(backend, owner, api_base, units)


async def list_units(backend: Backend, request: Request) -> Response:
    """GET data_units/[?data_collection=<id>&page=&page_size=]: the caller's, oldest first."""
    owner = await backend.owner(request)
    collection = _collection_filter(request)
    number, size = page_bounds(request)
    count, results = await backend.run(
        _page_of_units, backend, owner, backend.api_base(request), collection, number, size
    )
    return await bodies.answer(backend, page(backend, request, count, number, size, results))


async def get_unit(backend: Backend, request: Request, unit_id: int) -> Response:
    """GET data_units/<id>/: the caller's unit (404 for anybody else's)."""
    owner = await backend.owner(request)
    unit = await backend.run(backend.store.data_unit, owner, unit_id)
    if unit is None:
        raise not_found()
    rendered = await backend.run(render_units, backend, owner, backend.api_base(request), [unit])
    return json_response(rendered[0])
