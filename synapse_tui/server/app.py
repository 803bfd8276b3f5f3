"""`create_app(config)`: the Starlette app of the embedded Synapse-compatible backend."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import Message, Receive, Scope, Send

from synapse_tui.server import chunked, collections
from synapse_tui.server.backend import Backend
from synapse_tui.server.config import ServerConfig
from synapse_tui.server.errors import NOT_FOUND
from synapse_tui.server.limits import idle_limited

Handler = Callable[..., Awaitable[Response]]


def sweep_interval(expire_after: float) -> float:
    """How often expired uploads are cleaned: a quarter of the expiry, 1 s to 5 min."""
    return min(max(expire_after / 4, 1.0), 300.0)


def _endpoint(backend: Backend, handler: Handler, *params: str) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        args = [request.path_params[p] for p in params]
        return await chunked.guarded(handler(backend, request, *args))

    return endpoint


# The `chunked_upload/` endpoints by method: routed by Starlette, PUT and POST also by _App.
# Starlette allows HEAD wherever GET is: it is answered as GET, without the body.
_UPLOAD_HANDLERS: dict[str, Handler] = {
    "GET": chunked.get,
    "HEAD": chunked.get,
    "PUT": chunked.put_chunk,
    "POST": chunked.post,
}


def _by_method(backend: Backend, has_id: bool) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        upload_id = request.path_params["upload_id"] if has_id else None
        handler = _UPLOAD_HANDLERS[request.method]
        return await chunked.guarded(handler(backend, request, upload_id))

    return endpoint


def _routes(backend: Backend) -> list[BaseRoute]:
    methods = ["GET", "PUT", "POST"]
    return [
        Route("/chunked_upload/", _by_method(backend, False), methods=methods),
        Route("/chunked_upload/{upload_id}/", _by_method(backend, True), methods=methods),
        Route(
            "/chunked_upload/{upload_id}/file/",
            _endpoint(backend, chunked.download, "upload_id"),
            methods=["GET"],
        ),
        *collections.routes(backend, _endpoint),
        *_presigned_routes(backend),
    ]


def _presigned_routes(backend: Backend) -> list[BaseRoute]:
    """`storages/` and `data_files/presigned_upload/...` (server/presigned.py)."""
    from synapse_tui.server import presigned

    return presigned.routes(backend)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        detail: Any = NOT_FOUND
    elif exc.status_code == 405:
        detail = f'Method "{request.method}" not allowed.'
    else:
        detail = exc.detail
    return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=exc.headers)


async def _server_error(request: Request, exc: Exception) -> Response:
    """DRF-style JSON for the unexpected (uvicorn logs the traceback, never the headers)."""
    return JSONResponse({"detail": "A server error occurred."}, status_code=500)


class _App(Starlette):
    """Starlette, with the upload requests dispatched straight to their handlers.

    PUT and POST of `chunked_upload/` and `chunked_upload/<id>/` are what every upload
    sends, once per small file. Through Starlette's stack (two middlewares, the router
    matching each route in turn, the endpoint wrappers) that cost ~14% of the backend's
    loop thread per small file (py-spy). Those requests are matched here by path and run
    the same handlers, with the same JSON 500 for the unexpected (logged by uvicorn);
    everything else goes through Starlette as before.
    """

    def __init__(self, backend: Backend, prefix: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._backend = backend
        self._body_timeout = backend.config.body_timeout
        self._collection = f"{prefix}/chunked_upload/"
        self._item = re.compile(re.escape(self._collection) + "([^/]+)/")
        self._handlers = {m: _UPLOAD_HANDLERS[m] for m in ("PUT", "POST")}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = self._handlers.get(scope.get("method", "")) if scope["type"] == "http" else None
        if scope["type"] == "http":  # a stalled body must not hold its upload forever
            receive = idle_limited(receive, self._body_timeout)
        if handler is not None:
            path = scope["path"]
            root = scope.get("root_path", "")
            if root and path.startswith(root):
                path = path[len(root) :]
            if path == self._collection:
                return await self._direct(handler, None, scope, receive, send)
            if match := self._item.fullmatch(path):
                return await self._direct(handler, match.group(1), scope, receive, send)
        await super().__call__(scope, receive, send)

    async def _direct(
        self, handler: Handler, upload_id: str | None, scope: Scope, receive: Receive, send: Send
    ) -> None:
        scope["app"] = self
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            request = Request(scope, receive, tracked)
            response = await chunked.guarded(handler(self._backend, request, upload_id))
            await response(scope, receive, tracked)
        except Exception as exc:  # as Starlette's ServerErrorMiddleware: answer, then re-raise
            if not started:
                answer = await _server_error(Request(scope), exc)
                await answer(scope, receive, send)
            raise


def create_app(config: ServerConfig) -> Starlette:
    """The ASGI app; opens (and recovers) the store at `config.root` right away.

    The store is closed when the app's lifespan ends; the expiry sweep runs
    while the lifespan is active. `app.state.backend` exposes the internals to tests.
    """
    backend = Backend(config)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await backend.sweep()
        sweeper = asyncio.create_task(backend.sweep_forever(sweep_interval(config.expire_after)))
        try:
            yield
        finally:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
            backend.close()

    routes = _routes(backend)
    if config.prefix:
        routes = [Mount(config.prefix, routes=routes)]
    app = _App(
        backend,
        config.prefix,
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error, Exception: _server_error},
    )
    app.state.backend = backend
    return app
