"""Pytest fixture `embedded_server`: the embedded backend on loopback, fresh storage per test."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from synapse_tui.server import BackgroundServer, ServerConfig

TOKEN = "tok-embedded-owner"
OTHER_TOKEN = "tok-embedded-other"


class FakeClock:
    """Wall-clock time that tests can push forward (expiry without sleeping)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@dataclass
class EmbeddedServer:
    """A running embedded backend: `url` is the API root (with the `/api` prefix)."""

    url: str
    token: str
    other_token: str
    root: Path
    config: ServerConfig
    clock: FakeClock
    server: BackgroundServer

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def backend(self) -> Any:
        """The server's internals (store, writer locks) for white-box assertions."""
        assert self.server.app is not None
        return self.server.app.state.backend

    def headers(self, token: str | None = None) -> dict[str, str]:
        return {"Synapse-Access-Token": f"Token {token or self.token}"}


@pytest.fixture
def embedded_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    """Two users, prefix "/api", collection ("images", ["image", "meta"]), an injected clock."""
    root = tmp_path_factory.mktemp("embedded")
    clock = FakeClock()
    config = ServerConfig(
        root=root,
        tokens=[TOKEN, OTHER_TOKEN],
        prefix="/api",
        collections=[("images", ["image", "meta"])],
        clock=clock,
    )
    server = BackgroundServer(config)
    url = server.start()
    try:
        yield EmbeddedServer(url, TOKEN, OTHER_TOKEN, root, config, clock, server)
    finally:
        server.stop()
