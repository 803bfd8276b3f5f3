"""SQLite records of the embedded backend (uploads, users; data files and units in records.py).

Layout under the root (0700): `uploads.sqlite3` (WAL), `files/<upload uuid>` (0600),
`lock` (held with flock while a server uses the root). Storage paths come only from
the server-made UUID; the client's filename is metadata. Reads are cheap and may run
on the event loop; anything that commits runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synapse_tui.server import files
from synapse_tui.server.group_commit import GroupCommitter
from synapse_tui.server.ids import is_upload_id
from synapse_tui.server.records import DataRecords, migrate
from synapse_tui.server.users import UserCache

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

UPLOADING = 1
COMPLETE = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS uploads (
    id TEXT PRIMARY KEY,
    owner INTEGER NOT NULL REFERENCES users(id),
    filename TEXT NOT NULL,
    size INTEGER NOT NULL,
    received INTEGER NOT NULL,
    status INTEGER NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    completed_at REAL,
    checksum TEXT,
    expired INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS uploads_by_owner ON uploads(owner, created_at);
CREATE INDEX IF NOT EXISTS uploads_by_name ON uploads(owner, filename);
"""


class RootBusyError(RuntimeError):
    """Another server process already serves this root."""


_FREE_FOR = 0.5  # seconds a reading of the free space stands for
_free_seen: dict[Path, tuple[float, int]] = {}


def disk_free(
    path: Path,
    clock: Callable[[], float] = time.monotonic,
    usage: Callable[[Path], Any] = shutil.disk_usage,
) -> int:
    """Free bytes on the file system of `path`, read at most every half second (tests
    monkeypatch this, or give `clock` and `usage`). `statvfs` on a busy disk took ~4% of
    the loop thread's samples with one call per small file; a write past the real free
    space still gets ENOSPC, answered 507 like the early check."""
    now = clock()
    seen = _free_seen.get(path)
    if seen is not None and now - seen[0] < _FREE_FOR:
        return seen[1]
    free = usage(path).free
    if len(_free_seen) > 16:
        _free_seen.clear()
    _free_seen[path] = (now, free)
    return free


@dataclass(frozen=True)
class Upload:
    """One row of `uploads`; `offset` is the number of durable bytes."""

    id: str
    owner: int
    filename: str
    size: int
    offset: int
    status: int
    created_at: float
    updated_at: float
    completed_at: float | None
    checksum: str | None
    expired: bool

    def expires_at(self, expire_after: float) -> float | None:
        """Uploads expire `expire_after` seconds after their last chunk, unless complete."""
        return None if self.status == COMPLETE else self.updated_at + expire_after

    def is_expired(self, now: float, expire_after: float) -> bool:
        deadline = self.expires_at(expire_after)
        return self.expired or (deadline is not None and deadline <= now)


_UPLOAD_COLUMNS = (
    "id, owner, filename, size, received, status, created_at, updated_at,"
    " completed_at, checksum, expired"
)


def _upload(row: tuple[Any, ...]) -> Upload:
    uid, owner, filename, size, received, status, created, updated, completed, checksum = row[:10]
    return Upload(
        uid, owner, filename, size, received, status, created, updated, completed, checksum,
        bool(row[10]),
    )  # fmt: skip


class Store(DataRecords):
    """The SQLite database and the files folder of one root."""

    def __init__(self, root: Path, clock: Callable[[], float]) -> None:
        self.root = Path(root)
        self.clock = clock
        from synapse_tui.paths import private_dir

        private_dir(self.root)
        self.files_dir = private_dir(self.root / "files")
        self.db_path = self.root / "uploads.sqlite3"
        self._lock_fd = self._lock_root()
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self._rows: GroupCommitter | None = None
        self._users = UserCache()
        try:
            self._conn().executescript(_SCHEMA)
            migrate(self._conn())  # the data files and units tables (records.py)
            self._rows = GroupCommitter(self._connect(), lambda: files.sync_dir(self.files_dir))
            for suffix in ("", "-wal", "-shm"):
                p = Path(str(self.db_path) + suffix)
                if p.exists():
                    os.chmod(p, 0o600)
        except BaseException:
            self.close()
            raise

    def _lock_root(self) -> int | None:
        if fcntl is None:  # pragma: no cover
            return None
        fd = os.open(self.root / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise RootBusyError(f"another synapse-tui server is using {self.root}") from None
        return fd

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.db_path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=10000")
        conn.execute("PRAGMA foreign_keys=ON")
        with self._conns_lock:
            self._conns.append(conn)
        return conn

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
        return conn

    def _committer(self) -> GroupCommitter:
        """The thread that commits upload rows (started with the store)."""
        committer = self._rows
        if committer is None:
            raise RuntimeError("the store is closed")
        return committer

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        """Finish queued row writes, close every connection and release the root."""
        with self._conns_lock:
            rows, self._rows = self._rows, None
        if rows is not None:
            rows.close()
        with self._conns_lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def path_for(self, upload_id: str) -> Path:
        """Where an upload's bytes live; refuses anything but a canonical UUID."""
        if not is_upload_id(upload_id):
            raise ValueError("not an upload id")
        return self.files_dir / upload_id

    # -- users ---------------------------------------------------------------

    def cached_user(self, key: str) -> int | None:
        return self._users.get(key)

    def add_users(self, keys: list[str]) -> None:
        """Create the users of the configured tokens up front (one commit, not one per user)."""
        with self._tx() as db:
            db.executemany("INSERT OR IGNORE INTO users(key) VALUES (?)", [(k,) for k in keys])
            for key in keys:
                (uid,) = db.execute("SELECT id FROM users WHERE key = ?", (key,)).fetchone()
                self._users.put(key, int(uid))

    def find_user(self, key: str) -> int | None:
        """The numeric id of an owner key (a hash of the credentials), if it has one."""
        row = self._conn().execute("SELECT id FROM users WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        self._users.put(key, int(row[0]))
        return int(row[0])

    def user_id(self, key: str) -> int:
        """The numeric id of an owner key, created if needed: only for an owner about to
        store an upload, so the rows grow with uploads, not with tenant headers."""
        cached = self._users.get(key)
        if cached is not None:
            return cached
        with self._tx() as db:
            db.execute("INSERT OR IGNORE INTO users(key) VALUES (?)", (key,))
            (uid,) = db.execute("SELECT id FROM users WHERE key = ?", (key,)).fetchone()
        self._users.put(key, int(uid))
        return int(uid)

    # -- uploads -------------------------------------------------------------

    def get(self, upload_id: str) -> Upload | None:
        row = (
            self._conn()
            .execute(f"SELECT {_UPLOAD_COLUMNS} FROM uploads WHERE id = ?", (upload_id,))
            .fetchone()
        )
        return _upload(row) if row else None

    def list_for(self, owner: int, filename: str | None = None) -> list[Upload]:
        """The owner's uploads, or those named `filename` (by index: a client looking for
        the upload a lost answer left asks for its name, not for every upload)."""
        if filename is None:
            rows = self._conn().execute(
                f"SELECT {_UPLOAD_COLUMNS} FROM uploads WHERE owner = ? ORDER BY created_at, id",
                (owner,),
            )
        else:
            rows = self._conn().execute(
                f"SELECT {_UPLOAD_COLUMNS} FROM uploads WHERE owner = ? AND filename = ?"
                " ORDER BY created_at, id",
                (owner, filename),
            )
        return [_upload(r) for r in rows]

    # Row writes that end an upload request go through the group committer: each call
    # (on the event loop) returns a future that ends once the row is committed (fsynced).

    def insert(self, upload: Upload) -> asyncio.Future[None]:
        """Record a new upload whose first bytes are already durable (the folder entry is
        fsynced before the row commits)."""
        row = (
            upload.id,
            upload.owner,
            upload.filename,
            upload.size,
            upload.offset,
            upload.status,
            upload.created_at,
            upload.updated_at,
            upload.completed_at,
            upload.checksum,
            int(upload.expired),
        )

        def op(db: sqlite3.Connection) -> None:
            db.execute(
                f"INSERT INTO uploads ({_UPLOAD_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)", row
            )

        return self._committer().submit_on_loop(op, sync_dir=True)

    def advance(
        self, upload_id: str, old_offset: int, new_offset: int, now: float
    ) -> asyncio.Future[bool]:
        """Move the offset after a durable chunk; False if the row changed underneath."""

        def op(db: sqlite3.Connection) -> bool:
            cur = db.execute(
                "UPDATE uploads SET received = ?, updated_at = ?"
                " WHERE id = ? AND received = ? AND status = ? AND expired = 0",
                (new_offset, now, upload_id, old_offset, UPLOADING),
            )
            return cur.rowcount == 1

        return self._committer().submit_on_loop(op)

    def complete(self, upload_id: str, checksum: str, now: float) -> asyncio.Future[bool]:
        def op(db: sqlite3.Connection) -> bool:
            cur = db.execute(
                "UPDATE uploads SET status = ?, completed_at = ?, checksum = ?"
                " WHERE id = ? AND status = ? AND expired = 0",
                (COMPLETE, now, checksum, upload_id, UPLOADING),
            )
            return cur.rowcount == 1

        return self._committer().submit_on_loop(op)

    def expire(self, upload: Upload) -> None:
        """Mark an upload expired and delete its bytes (the row answers 410 for a while)."""
        with self._tx() as db:
            db.execute("UPDATE uploads SET expired = 1 WHERE id = ?", (upload.id,))
        files.remove(self.path_for(upload.id))

    def stale_uploads(self, now: float, expire_after: float) -> list[Upload]:
        """Incomplete uploads past their deadline whose files are still on disk."""
        rows = self._conn().execute(
            f"SELECT {_UPLOAD_COLUMNS} FROM uploads"
            " WHERE status = ? AND expired = 0 AND updated_at + ? <= ?",
            (UPLOADING, expire_after, now),
        )
        return [_upload(r) for r in rows]

    def purge_expired(self, now: float, expire_after: float) -> int:
        """Forget expired rows one more `expire_after` after they expired (then 404)."""
        with self._tx() as db:
            cur = db.execute(
                "DELETE FROM uploads WHERE expired = 1 AND updated_at + ? <= ?",
                (2 * expire_after, now),
            )
            return cur.rowcount

    def recover(self) -> None:
        """Make the records match the disk after a crash (run before serving).

        Bytes past an incomplete upload's offset were never acknowledged: cut them.
        A file shorter than its offset (lost on a failing disk) lowers the offset.
        Files no row owns (created, then crashed before the insert) are deleted.
        """
        conn = self._conn()
        known: set[str] = set()
        rows = conn.execute(f"SELECT {_UPLOAD_COLUMNS} FROM uploads").fetchall()
        for upload in map(_upload, rows):
            known.add(upload.id)
            if upload.status != UPLOADING or upload.expired:
                continue
            path = self.path_for(upload.id)
            size = files.size_of(path)
            if size is None:
                path.touch(mode=0o600)
                size = 0
            if size > upload.offset:
                files.truncate(path, upload.offset)
            elif size < upload.offset:
                log.warning(
                    "upload %s: %d bytes on disk, %d recorded", upload.id, size, upload.offset
                )
                with self._tx() as db:
                    db.execute("UPDATE uploads SET received = ? WHERE id = ?", (size, upload.id))
        for entry in self.files_dir.iterdir():
            if entry.name not in known:
                files.remove(entry)
