"""Run the backend with uvicorn: `BackgroundServer` (a daemon thread) and the shared setup."""

from __future__ import annotations

import importlib.util
import ipaddress
import socket
import sys
import threading
import time
from types import TracebackType
from typing import Any

import uvicorn
from starlette.applications import Starlette

from synapse_tui.server.app import create_app
from synapse_tui.server.config import ServerConfig

START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


def http_protocol() -> Any:
    """httptools when installed (faster; our lean subclass of uvicorn's), else h11.

    Either is our subclass of uvicorn's: both cap the request head (limits.py)."""
    if importlib.util.find_spec("httptools") is None:
        from synapse_tui.server.h11_protocol import CappedH11Protocol

        return CappedH11Protocol
    from synapse_tui.server.http_protocol import LeanHttpToolsProtocol

    return LeanHttpToolsProtocol


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket (port 0 picks a free one), ready before uvicorn starts.

    The protocol is given explicitly: asyncio turns Nagle off (TCP_NODELAY) only on
    sockets whose `proto` says TCP, and `socket.create_server` leaves it 0. Without
    it a response's body, written after its headers, waited for the client's delayed
    ACK: 40 ms added to every request on Linux.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        if hasattr(socket, "SO_REUSEADDR") and sys.platform != "win32":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
        sock.listen(128)
    except BaseException:
        sock.close()
        raise
    return sock


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def api_url(host: str, port: int, prefix: str) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}{prefix}"


def uvicorn_config(app: Starlette, **overrides: Any) -> uvicorn.Config:
    """Quiet (warnings only, no access log: headers carry tokens), graceful on stop."""
    options: dict[str, Any] = {
        "log_level": "warning",
        "access_log": False,
        "http": http_protocol(),
        "ws": "none",
        "lifespan": "on",
        "timeout_graceful_shutdown": 5,
        "server_header": False,
    }
    options.update(overrides)
    return uvicorn.Config(app, **options)


class BackgroundServer:
    """uvicorn in a daemon thread, for tests and the dashboard.

    `start()` blocks until the socket accepts and returns the API root URL;
    `stop()` is graceful and idempotent. `app` is the Starlette app once started.
    `http` overrides the protocol class (tests run the h11 one too).
    """

    def __init__(
        self, config: ServerConfig, host: str = "127.0.0.1", port: int = 0, http: Any = None
    ) -> None:
        self.config = config
        self.host = host
        self.port = port
        self.http = http
        self.url = ""
        self.app: Starlette | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def start(self) -> str:
        if self._thread is not None:
            return self.url
        sock = bind(self.host, self.port)
        try:
            self.port = sock.getsockname()[1]
            self.app = create_app(self.config)
        except BaseException:
            sock.close()
            raise
        # log_config=None: leave the host application's logging alone.
        overrides: dict[str, Any] = {"log_config": None}
        if self.http is not None:
            overrides["http"] = self.http
        server = uvicorn.Server(uvicorn_config(self.app, **overrides))
        self._server = server
        self._thread = threading.Thread(
            target=self._run, args=(server, sock), name="synapse-tui-server", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not server.started:
            self._thread.join(0.005)
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the embedded server did not start") from self._error
        self.url = api_url(self.host, self.port, self.config.prefix)
        return self.url

    def _run(self, server: uvicorn.Server, sock: socket.socket) -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # SystemExit from a failed startup included
            self._error = exc
        finally:
            sock.close()

    def stop(self) -> None:
        thread, server = self._thread, self._server
        if thread is None or server is None:
            return
        server.should_exit = True
        thread.join(STOP_TIMEOUT)
        if thread.is_alive():
            server.force_exit = True
            thread.join(STOP_TIMEOUT)
        if self.app is not None:
            self.app.state.backend.close()  # no-op when the lifespan already closed it
        self._thread = None
        self._server = None

    def __enter__(self) -> BackgroundServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
