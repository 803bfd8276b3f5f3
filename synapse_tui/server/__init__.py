"""The embedded Synapse-compatible upload backend behind `synapse-tui serve`."""

from synapse_tui.server.app import create_app
from synapse_tui.server.config import ServerConfig
from synapse_tui.server.runner import BackgroundServer

__all__ = ["BackgroundServer", "ServerConfig", "create_app"]
