"""Data collections (from `--collection`), DRF page-number pagination, and the routes of the
data workflow (collections, data files, data units).

Collections are visible to every token; data files and units belong to their creator.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from synapse_tui.server.backend import Backend
from synapse_tui.server.errors import ApiError, json_response, not_found
from synapse_tui.server.signing import Signer, load_secret
from synapse_tui.server.specs import FileSpec, normalize

PAGE_SIZE = 100  # DRF PageNumberPagination: page_size when the client gives none
MAX_PAGE_SIZE = 1000  # ... and the most a client may ask for


class Collections:
    """The configured collections, ids from 1 in command-line order, and the URL signer."""

    def __init__(self, config: Any) -> None:
        self.by_id: dict[int, tuple[str, list[FileSpec]]] = {
            i: (name, normalize(list(specs)))
            for i, (name, specs) in enumerate(config.collections, start=1)
        }
        self.signer = Signer(load_secret(config.root))

    def spec(self, collection_id: int, name: str) -> FileSpec | None:
        return next((s for s in self.by_id[collection_id][1] if s.name == name), None)

    def render(self, collection_id: int) -> dict[str, Any]:
        name, specs = self.by_id[collection_id]
        return {
            "id": collection_id,
            "name": name,
            "file_specifications": [s.render(i) for i, s in enumerate(specs, start=1)],
        }

    def describe(self) -> Iterator[str]:
        """One line per collection for `serve`'s start-up message."""
        for cid, (name, specs) in self.by_id.items():
            syntax = ",".join(s.syntax() for s in specs)
            yield f"Data collection {cid}: {name} ({syntax})  --collection {cid}"


def page_bounds(request: Request) -> tuple[int, int]:
    """(page, page_size) of the query, as DRF reads them: a bad page_size means the default,
    a large one the maximum; a page that is not a positive integer is a 404."""
    raw_size = request.query_params.get("page_size", "")
    size = int(raw_size) if raw_size.isdigit() and int(raw_size) > 0 else PAGE_SIZE
    raw_page = request.query_params.get("page", "1")
    if not raw_page.isdigit() or int(raw_page) < 1 or len(raw_page) > 12:
        raise ApiError(404, "Invalid page.")
    return int(raw_page), min(size, MAX_PAGE_SIZE)


def page(
    backend: Backend, request: Request, count: int, number: int, size: int, results: list[Any]
) -> dict[str, Any]:
    """The DRF page (`count`, `next`, `previous`, `results`); absolute next/previous URLs."""
    if number > 1 and (number - 1) * size >= count:
        raise ApiError(404, "Invalid page.")
    base = backend.api_base(request) + request.url.path.removeprefix(backend.config.prefix)

    def link(n: int) -> str:
        query = [(k, v) for k, v in request.query_params.multi_items() if k != "page"]
        if n > 1:
            query.append(("page", str(n)))
        return base + ("?" + urlencode(query) if query else "")

    return {
        "count": count,
        "next": link(number + 1) if number * size < count else None,
        "previous": link(number - 1) if number > 1 else None,
        "results": results,
    }


async def list_collections(backend: Backend, request: Request) -> Response:
    await backend.owner(request)
    number, size = page_bounds(request)
    ids = sorted(backend.collections.by_id)
    chosen = ids[(number - 1) * size : number * size]
    results = [backend.collections.render(i) for i in chosen]
    return json_response(page(backend, request, len(ids), number, size, results))


async def get_collection(backend: Backend, request: Request, collection_id: int) -> Response:
    await backend.owner(request)
    if collection_id not in backend.collections.by_id:
        raise not_found()
    return json_response(backend.collections.render(collection_id))


Endpoint = Callable[..., Callable[[Request], Any]]


def routes(backend: Backend, endpoint: Endpoint) -> list[BaseRoute]:
    """The data workflow's routes; `endpoint(backend, handler, *path params)` wraps each."""
    from synapse_tui.server import datafiles, units

    return [
        Route("/data_collections/", endpoint(backend, list_collections), methods=["GET"]),
        Route(
            "/data_collections/{collection_id:int}/",
            endpoint(backend, get_collection, "collection_id"),
            methods=["GET"],
        ),
        Route("/data_files/", endpoint(backend, datafiles.create), methods=["POST"]),
        Route(
            "/data_files/verify_checksums/",
            endpoint(backend, datafiles.verify_checksums),
            methods=["POST"],
        ),
        Route(
            "/data_files/{file_id:int}/download/{name}",
            endpoint(backend, datafiles.download, "file_id", "name"),
            methods=["GET"],
        ),
        Route("/data_units/", endpoint(backend, units.list_units), methods=["GET"]),
        Route("/data_units/", endpoint(backend, units.create_units), methods=["POST"]),
        Route(
            "/data_units/{unit_id:int}/",
            endpoint(backend, units.get_unit, "unit_id"),
            methods=["GET"],
        ),
    ]
