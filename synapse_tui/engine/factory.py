"""The engine's wiring from Settings: a ProtocolClient and an UploadManager, typed."""

from __future__ import annotations

from collections.abc import Iterable

from synapse_tui.config import Settings, require_backend
from synapse_tui.engine.events import Listener
from synapse_tui.engine.journal import Journal
from synapse_tui.engine.protocol import ProtocolClient
from synapse_tui.engine.scheduler import SMALL_BOOST, EngineOptions, UploadManager


def make_client(settings: Settings) -> ProtocolClient:
    """A ProtocolClient for the configured backend (raises ConfigError when unset)."""
    require_backend(settings)
    assert settings.host is not None
    return ProtocolClient(
        settings.host,
        settings.credentials,
        verify=settings.verify,
        max_connections=64,
        proxy=settings.proxy,
        proxy_env=settings.proxy_env,
    )


def engine_options(settings: Settings) -> EngineOptions:
    return EngineOptions(
        host=settings.host or "",
        chunk_size=settings.chunk_size,
        concurrency=settings.concurrency,
        small_boost=SMALL_BOOST,  # a slot carries one large file or SMALL_BOOST small ones
        bwlimit=settings.bwlimit,
        retries=settings.retries,
        strategy=settings.strategy,
    )


def make_manager(
    settings: Settings,
    listeners: Iterable[Listener] = (),
    client: ProtocolClient | None = None,
    journal: Journal | None = None,
) -> UploadManager:
    """An UploadManager for the configured backend (raises ConfigError when unset)."""
    client = client or make_client(settings)
    journal = journal or Journal(settings.state_dir)
    return UploadManager(client, journal, engine_options(settings), listeners)
