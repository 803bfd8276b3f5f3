"""synapse-tui: fast, resumable uploads to a Synapse backend."""

__version__ = "0.1.0"
