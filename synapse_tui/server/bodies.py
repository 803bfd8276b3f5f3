"""JSON request bodies, capped (413 before the excess is read) and parsed off the event loop
when large (a 200 MiB body once froze every upload for seconds and took GiBs of RAM)."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from synapse_tui.server.backend import Backend
from synapse_tui.server.errors import ApiError

JSON_LIMIT = 16 << 20  # bytes of a JSON body, whatever the route
INLINE_PARSE = 64 << 10  # bodies up to this are parsed on the loop (cheaper than a hop)


def too_large(limit: int) -> str:
    return f"Request body is too large (the limit is {limit} bytes)"


def parse(body: bytes) -> Any:
    """The JSON document of `body` (`{}` when empty); 400 in DRF's words when malformed."""
    if not body.strip():
        return {}
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise ApiError(400, f"JSON parse error - {exc}") from None


async def read(request: Request, limit: int | None = None) -> bytes:
    """The whole body, refused with 413 as soon as it is known to exceed `limit` (default
    JSON_LIMIT): from its Content-Length before reading, else counting the streamed bytes."""
    limit = JSON_LIMIT if limit is None else limit
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ApiError(413, too_large(limit))
    chunks: list[bytes] = []
    size = 0
    async for data in request.stream():
        size += len(data)
        if size > limit:
            raise ApiError(413, too_large(limit))
        chunks.append(data)
    return b"".join(chunks)


async def read_json(backend: Backend, request: Request, limit: int | None = None) -> Any:
    """The parsed JSON body (capped); a large one is parsed in a worker thread."""
    body = await read(request, limit)
    if len(body) <= INLINE_PARSE:
        return parse(body)
    return await backend.run(parse, body)


def _render(body: Any) -> bytes:
    # As Starlette's JSONResponse renders it.
    return json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


async def answer(backend: Backend, body: Any, status: int = 200) -> Response:
    """A JSON response serialized in a worker thread (a page of units can be MiBs)."""
    content = await backend.run(_render, body)
    return Response(content, status_code=status, media_type="application/json")
