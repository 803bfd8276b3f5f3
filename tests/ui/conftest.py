"""UI fixtures: an embedded backend on loopback, a data folder, and an app factory."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from synapse_tui import paths
from synapse_tui.config import Settings
from synapse_tui.engine.protocol import Credentials
from synapse_tui.server import BackgroundServer, ServerConfig
from synapse_tui.ui.app import SynapseApp

TOKEN = "ui-test-token-0123456789"


@dataclass
class Backend:
    """A running embedded server; `restart` keeps the root (and the port) and changes limits."""

    root: Path
    token: str
    url: str = ""
    port: int = 0
    server: BackgroundServer | None = None
    collections: list[tuple[str, list[str]]] = field(default_factory=list)

    def start(self, max_bytes: int | None = None) -> None:
        config = ServerConfig(
            root=self.root,
            tokens=[self.token],
            max_bytes=max_bytes,
            collections=self.collections,
        )
        self.server = BackgroundServer(config, host="127.0.0.1", port=self.port)
        self.url = self.server.start().rstrip("/")
        self.port = int(self.url.rsplit(":", 1)[1].split("/")[0])

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def restart(self, max_bytes: int | None = None) -> None:
        self.stop()
        self.start(max_bytes)

    def stored(self) -> list[bytes]:
        """The bytes of every file the server holds."""
        folder = self.root / "files"
        if not folder.is_dir():
            return []
        return sorted(p.read_bytes() for p in folder.iterdir() if p.is_file())


@pytest.fixture(autouse=True)
def full_colour_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """The theme does not depend on the TERM the tests run under (16 colours picks
    synapse-16color by itself); a test of that sets TERM and COLORTERM itself."""
    monkeypatch.setenv("COLORTERM", "truecolor")


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[Backend]:
    b = Backend(root=tmp_path / "server", token=TOKEN)
    b.start()
    yield b
    b.stop()


def make_files(folder: Path) -> dict[str, bytes]:
    """A small, deterministic tree: sizes are fixed so snapshots are stable."""
    files = {
        "alpha.txt": b"a" * 1000,
        "beta.bin": bytes(range(256)) * 300,
        "gamma.csv": b"x,y\n" * 5000,
        "images/one.tif": b"\x01" * 40_000,
        "images/two.tif": b"\x02" * 50_000,
        "notes/readme.md": b"# notes\n" * 10,
        ".hidden": b"secret",
    }
    for name, data in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return files


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    make_files(folder)
    return folder


def settings_for(backend: Backend, **overrides: Any) -> Settings:
    settings = Settings(
        host=backend.url,
        credentials=Credentials(access_token=backend.token),
        state_dir=paths.state_dir(),
        chunk_size=64 * 1024,
        retries=2,
    )
    settings.__dict__.update(overrides)
    return settings


@pytest.fixture
def app_factory(backend: Backend, data_dir: Path) -> Callable[..., SynapseApp]:
    def make(**kwargs: Any) -> SynapseApp:
        settings = kwargs.pop("settings", None) or settings_for(backend)
        directory = kwargs.pop("directory", data_dir)
        kwargs.setdefault("progress_interval", 0.05)
        app = SynapseApp(settings, str(directory), **kwargs)
        if not kwargs.get("start_engine", True):
            # No engine: the queue pane asks a fake of its windows, fed the same events.
            from tests.ui.memory_queue import install

            install(app)
        return app

    return make


async def wait_for(pilot: Any, condition: Callable[[], bool], timeout: float = 20.0) -> None:
    """Let the app run until `condition()` holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            code = condition.__code__
            where = f"{code.co_filename.rsplit('/', 1)[-1]}:{code.co_firstlineno}"
            raise AssertionError(f"timed out after {timeout}s waiting for the condition at {where}")
        await pilot.pause(0.05)


async def settle(seconds: float = 0.0) -> None:
    await asyncio.sleep(seconds)
