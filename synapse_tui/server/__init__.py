"""The embedded Synapse-compatible upload backend behind `synapse-tui serve`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from synapse_tui.server.app import create_app
    from synapse_tui.server.config import ServerConfig
    from synapse_tui.server.runner import BackgroundServer

__all__ = ["BackgroundServer", "ServerConfig", "create_app"]

# Imported on first use: `synapse-tui status` must not pay for Starlette and uvicorn.
_WHERE = {
    "create_app": "synapse_tui.server.app",
    "ServerConfig": "synapse_tui.server.config",
    "BackgroundServer": "synapse_tui.server.runner",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
