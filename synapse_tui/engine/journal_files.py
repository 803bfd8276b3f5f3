"""The journal's files on disk: its folder, the sidecar that proves it was set up, damage,
and how a connection to it is set up."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from synapse_tui import paths
from synapse_tui.engine.errors import ConfigError

MARKER_SUFFIX = ".initialised"
SIDE_FILES = ("-wal", "-shm")
# SQLite's answers for a file that is not (or no longer) a database.
_DAMAGE_CODES = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB
_FIX_ACCESS = "make the folder writable, or choose another one with --state-dir"


class JournalError(ConfigError):
    """The journal cannot be used; the message names the file and what to do (exit 2)."""


def marker(path: Path) -> Path:
    return Path(str(path) + MARKER_SUFFIX)


def prepare(directory: Path, path: Path) -> None:
    """Make the folder (private if created here), and refuse a journal found emptied.

    The sidecar `journal.sqlite3.initialised` is written once the journal has its tables.
    A journal file of zero bytes with the sidecar beside it was truncated (SQLite would
    silently take it for a new, empty journal and every interrupted upload would be lost):
    it is moved aside and reported like damage. A journal without the sidecar (made by an
    older synapse-tui) gets one on its next open.
    """
    try:
        paths.private_dir(directory)
        if path.is_dir():
            raise JournalError(_moved(path, "is a folder, not a journal"))
        if path.exists() and path.stat().st_size == 0 and marker(path).exists():
            raise JournalError(_moved(path, "is empty, though it held a journal (truncated?)"))
        if not path.exists():
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        os.chmod(path, 0o600)
    except OSError as exc:
        raise JournalError(
            f"cannot use the journal {path}: {_reason(exc)}; {_FIX_ACCESS}"
        ) from None


def note_initialised(path: Path) -> None:
    """Write the sidecar (once): from now on an empty journal file is damage, not new."""
    side = marker(path)
    if side.exists():
        return
    fd = os.open(side, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    try:
        os.write(fd, b"synapse-tui journal; an empty journal file beside this one was damaged\n")
    finally:
        os.close(fd)


def unusable(path: Path, exc: BaseException) -> JournalError:
    """The error to raise for `exc`, met while opening the journal at `path`.

    A file SQLite says is no database, or a malformed one, is moved aside (renamed with a
    timestamp, never deleted) so the next run starts a new journal; anything else (a
    read-only folder, a full disk) leaves the files alone.
    """
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(exc, sqlite3.DatabaseError) and code in _DAMAGE_CODES:
        return JournalError(_moved(path, f"is damaged ({exc})"))
    if code == 5:  # SQLITE_BUSY, after the 30 s busy timeout
        return JournalError(f"the journal {path} is locked by another process ({exc}): try again")
    return JournalError(f"cannot use the journal {path}: {_reason(exc)}; {_FIX_ACCESS}")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc)


def _moved(path: Path, what: str) -> str:
    """Rename the journal (and its -wal, -shm) aside; the one-line report of it."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    aside = path.with_name(f"{path.name}.damaged-{stamp}")
    n = 1
    while aside.exists():
        n += 1
        aside = path.with_name(f"{path.name}.damaged-{stamp}-{n}")
    try:
        os.rename(path, aside)
        for suffix in SIDE_FILES:
            side = Path(str(path) + suffix)
            if side.exists():
                os.rename(side, Path(str(aside) + suffix))
    except OSError as exc:
        return (
            f"the journal {path} {what}, and it cannot be moved aside ({_reason(exc)}): "
            f"move it away yourself, or choose another folder with --state-dir"
        )
    return (
        f"the journal {path} {what}: moved it aside to {aside.name}; run the command again "
        "to start a new journal (the uploads it held are not resumed)"
    )


def configure(db: sqlite3.Connection, backstop_pages: int) -> None:
    """A connection's settings (Journal's, both of them)."""
    # NORMAL in WAL mode survives any process crash; only an OS crash may lose the last
    # commits, and the server's offset is re-read on resume anyway.
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA busy_timeout=30000")
    # Checkpoints run on their own thread (see journal_checkpoint); a connection does one
    # itself only if the WAL outgrew 64 MiB all the same.
    db.execute(f"PRAGMA wal_autocheckpoint={backstop_pages}")


def switch_to_wal(db: sqlite3.Connection, patience: float = 30.0) -> None:
    """Switch to WAL. Two processes opening a new journal at once: the switch of one
    meets the other's lock and SQLite answers "database is locked" at once, without
    its busy handler, so it is tried again here for as long as busy_timeout waits."""
    deadline = time.monotonic() + patience
    delay = 0.005
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(delay)
        delay = min(0.1, delay * 2)
