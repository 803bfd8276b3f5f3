"""Fixtures of the presigned tests: moto on loopback, and the embedded backend in front of it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from synapse_tui.server import BackgroundServer, ServerConfig
from tests.harness.embedded import OTHER_TOKEN, TOKEN, EmbeddedServer, FakeClock
from tests.harness.moto import MotoServer, moto, moto_process  # noqa: F401  (fixtures)

PART = 5 << 20  # S3's smallest part: multipart tests stay small
THRESHOLD = 6 << 20


@contextlib.contextmanager
def s3_backend(moto: MotoServer, root: Path, endpoint: str) -> Iterator[EmbeddedServer]:  # noqa: F811
    """The embedded backend storing into moto's bucket through `endpoint` (moto itself, or a
    fault proxy in front of it: the URLs it hands out point there)."""
    clock = FakeClock()
    config = ServerConfig(
        root=root,
        tokens=[TOKEN, OTHER_TOKEN],
        prefix="/api",
        collections=[("images", ["image", "meta"])],
        clock=clock,
        storage=f"s3://{moto.bucket}/up",
        s3_endpoint=endpoint,
        multipart_threshold=THRESHOLD,
        part_size=PART,
    )
    server = BackgroundServer(config)
    url = server.start()
    try:
        yield EmbeddedServer(url, TOKEN, OTHER_TOKEN, root, config, clock, server)
    finally:
        server.stop()


@pytest.fixture
def s3_server(
    moto: MotoServer,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[EmbeddedServer]:
    """The embedded backend with `--storage s3://<bucket>/up --s3-endpoint <moto>`."""
    with s3_backend(moto, tmp_path_factory.mktemp("embedded-s3"), moto.endpoint) as server:
        yield server
