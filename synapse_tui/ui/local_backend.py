"""The embedded backend, started in-process on loopback when no host is configured."""

from __future__ import annotations

import secrets
import socket
from pathlib import Path
from typing import Any

from synapse_tui import paths

DEFAULT_PORT = 8765


def local_token(folder: Path) -> str:
    """The local backend's token: created once (0600), then reused across launches."""
    path = folder / "local-token"
    try:
        token = path.read_text().strip()
    except FileNotFoundError:
        token = ""
    if not token:
        token = secrets.token_urlsafe(32)
        paths.write_private(path, token.encode())
    return token


def saved_port(folder: Path) -> int:
    try:
        return int((folder / "local-port").read_text().strip())
    except (OSError, ValueError):
        return DEFAULT_PORT


def start_local_backend(folder: Path | None = None) -> tuple[Any, str, str]:
    """Start the embedded server on a stable loopback port; returns (server, url, token).

    The port is stable across launches (the journal keys jobs by the API URL, and the
    server's upload URLs carry the port), falling back to any free port when taken.
    """
    from synapse_tui.server import BackgroundServer, ServerConfig

    folder = folder or paths.data_dir()
    paths.private_dir(folder)
    token = local_token(folder)
    config = ServerConfig(root=folder / "server", tokens=[token])
    port = saved_port(folder)
    if not port_free(port):
        port = 0
    try:
        server = BackgroundServer(config, host="127.0.0.1", port=port)
        url = server.start()
    except (Exception, SystemExit):
        if port == 0:
            raise
        server = BackgroundServer(config, host="127.0.0.1", port=0)
        url = server.start()
    actual = _port_of(url)
    if actual is not None and actual != port:
        paths.write_private(folder / "local-port", str(actual).encode())
    return server, url.rstrip("/"), token


def port_free(port: int) -> bool:
    """Whether 127.0.0.1:`port` can be bound right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _port_of(url: str) -> int | None:
    from urllib.parse import urlsplit

    return urlsplit(url).port
