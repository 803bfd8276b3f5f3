"""Fixtures of the fault tests: one drf-chunked-upload server per module, a timing proxy."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.faults.helpers import TimedProxy
from tests.harness.drf import DrfServer, run_drf_server


@pytest.fixture(scope="module")
def drf(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DrfServer]:
    """A drf-chunked-upload server shared by a module (tests use distinct file names)."""
    with run_drf_server(tmp_path_factory.mktemp("drf")) as server:
        yield server


@pytest.fixture
async def proxy(drf: DrfServer) -> AsyncIterator[TimedProxy]:
    """A fault proxy in front of the module's server, in the test's event loop."""
    p = TimedProxy("127.0.0.1", drf.port)
    await p.start()
    try:
        yield p
    finally:
        await p.stop()
