"""The engine's wiring from Settings: a ProtocolClient and an UploadManager, typed."""

from __future__ import annotations

from collections.abc import Iterable

from synapse_tui.config import Settings
from synapse_tui.engine.errors import ConfigError
from synapse_tui.engine.events import Listener
from synapse_tui.engine.journal import Journal
from synapse_tui.engine.protocol import ProtocolClient
from synapse_tui.engine.scheduler import SMALL_BOOST, EngineOptions, UploadManager


def check_backend(settings: Settings) -> None:
    """Raise ConfigError when no backend or no credentials are configured."""
    if not settings.host:
        raise ConfigError(
            "no backend configured: give --host and --token, set SYNAPSE_HOST and "
            "SYNAPSE_ACCESS_TOKEN, or run `synapse-tui serve` for a local one"
        )
    if not settings.credentials.present:
        raise ConfigError("no credentials: give --token (or --user-token with --tenant)")


def make_client(settings: Settings) -> ProtocolClient:
    """A ProtocolClient for the configured backend (raises ConfigError when unset)."""
    check_backend(settings)
    assert settings.host is not None
    return ProtocolClient(
        settings.host,
        settings.credentials,
        verify=settings.verify,
        max_connections=64,
        proxy=settings.proxy,
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
