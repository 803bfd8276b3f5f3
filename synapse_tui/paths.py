"""Where synapse-tui keeps its config, state and data (platformdirs; overridable for tests)."""

from __future__ import annotations

import os
import stat
import sys
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
    """Make sure `path` exists; returns it.

    A folder created here is made 0700 (its parents, created too when missing, keep the
    default mode). A folder that already exists is the user's: it is used as it is, never
    chmod-ed (`--root ~` once made the home folder private), with one line on stderr when
    other users may read it.
    """
    try:
        path.mkdir(parents=True)
    except FileExistsError:
        if not path.is_dir():
            raise NotADirectoryError(f"not a folder: {path}") from None
        _warn_if_shared(path)
        return path
    os.chmod(path, 0o700)
    return path


_warned: set[str] = set()


def _warn_if_shared(path: Path) -> None:
    """One stderr line per folder and process when group or others may read `path`."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    key = os.path.realpath(path)
    if mode & 0o044 and key not in _warned:
        _warned.add(key)
        sys.stderr.write(
            f"synapse-tui: warning: {path} is readable by other users (mode"
            f" {stat.S_IMODE(mode):04o}); using it as it is (`chmod 700` it to keep it private)\n"
        )
        sys.stderr.flush()


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
