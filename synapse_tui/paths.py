"""Where synapse-tui keeps its config, state and data (platformdirs; overridable for tests)."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP = "synapse-tui"


def config_dir() -> Path:
    """The folder of synapse-tui's own config file and user themes."""
    override = os.environ.get("SYNAPSE_TUI_CONFIG_DIR")
    return Path(override) if override else Path(platformdirs.user_config_dir(APP))


def state_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """The folder of the journal (`--state-dir` > SYNAPSE_TUI_STATE_DIR > platformdirs)."""
    if override:
        return Path(override)
    env = os.environ.get("SYNAPSE_TUI_STATE_DIR")
    return Path(env) if env else Path(platformdirs.user_state_dir(APP))


def data_dir() -> Path:
    """The folder of the embedded backend's storage by default."""
    override = os.environ.get("SYNAPSE_TUI_DATA_DIR")
    return Path(override) if override else Path(platformdirs.user_data_dir(APP))


def sdk_config_file() -> Path:
    """The official SDK's config file, `~/.synapse/config.json`."""
    return Path.home() / ".synapse" / "config.json"


def private_dir(path: Path) -> Path:
    """Create `path` (and parents) and make it 0700; returns it."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


_replace = os.replace  # a seam: a test fails the rename for this module alone


def write_private(path: Path, data: bytes) -> None:
    """Write `data` atomically to `path` as a 0600 file in a 0700 folder."""
    private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    _replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
