"""Fixtures of the embedded-backend tests: a sync client and a factory for custom servers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from synapse_tui.server import BackgroundServer, ServerConfig
from tests.harness.embedded import OTHER_TOKEN, TOKEN, EmbeddedServer, FakeClock


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as c:
        yield c


@pytest.fixture
def make_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., EmbeddedServer]]:
    """Start servers with custom settings (same root to simulate a restart); all stopped after."""
    started: list[BackgroundServer] = []

    def start(
        root: Path | None = None, clock: FakeClock | None = None, **options: Any
    ) -> EmbeddedServer:
        root = root or tmp_path_factory.mktemp("custom")
        clock = clock or FakeClock()
        options.setdefault("tokens", [TOKEN, OTHER_TOKEN])
        config = ServerConfig(root=root, clock=clock, **options)
        server = BackgroundServer(config)
        url = server.start()
        started.append(server)
        return EmbeddedServer(url, TOKEN, OTHER_TOKEN, root, config, clock, server)

    yield start
    for server in started:
        server.stop()
