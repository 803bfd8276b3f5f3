"""The state one app serves from: config, store, writer locks, MD5 states, worker threads."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from starlette.requests import Request

from synapse_tui.server import files
from synapse_tui.server.auth import Authenticator, owner_key
from synapse_tui.server.config import ServerConfig
from synapse_tui.server.errors import ApiError, not_found
from synapse_tui.server.pool import LeanPool
from synapse_tui.server.sessions import Sessions
from synapse_tui.server.store import COMPLETE, Store, Upload, is_upload_id
from synapse_tui.server.users import NO_USER

log = logging.getLogger(__name__)
T = TypeVar("T")

EXPIRED = "Upload has expired"
ALREADY_COMPLETE = 'Upload has already been marked as "complete"'
BUSY = "Another request is writing to this upload"
INSUFFICIENT_STORAGE = "Insufficient storage"
MAX_BASES = 64
_OWNER_KEY = "synapse_tui.owner_key"  # the request's owner key, kept in its ASGI scope


class Backend:
    """Shared by every request of one app; blocking work goes to `self.executor`."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.store = Store(config.root, config.clock)
        try:
            self.store.recover()
            self.store.add_users([owner_key(t) for t in config.tokens])
        except BaseException:
            self.store.close()
            raise
        self.sessions = Sessions()
        self.auth = Authenticator(config.tokens)
        from synapse_tui.server.collections import Collections

        self.collections = Collections(config)
        self.executor = LeanPool(8, "synapse-io")
        self._catch_ups: dict[str, asyncio.Task[None]] = {}
        self._stopping = threading.Event()
        self._closed = False
        self._bases: dict[tuple[Any, ...], str] = {}
        self.object_storage: Any = None  # S3Storage of `--storage` (server/presigned.py)

    def close(self) -> None:
        """Release threads, connections and the root; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._stopping.set()
        for task in list(self._catch_ups.values()):
            with contextlib.suppress(RuntimeError):  # its loop may be gone already
                task.cancel()
        self.executor.shutdown(wait=True, cancel_futures=True)
        self.store.close()

    def now(self) -> float:
        return self.config.clock()

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await self.executor.call(fn, *args)

    async def owner(self, request: Request, create: bool = False) -> int:
        """The numeric user of the request's credentials, or a 401 ApiError.

        An owner that never stored anything has no row: NO_USER (which owns nothing)
        unless `create`, which only a request about to record an upload passes. So
        20,000 tenant headers on one token read 20,000 times and write nothing.
        """
        scope = request.scope
        key = scope.get(_OWNER_KEY)
        if key is None:  # asked twice by a request that stores: hashed once
            key = scope[_OWNER_KEY] = self.auth.owner_key(request.headers)
        cached = self.store.cached_user(key)
        if cached is not None:
            return cached
        if create:
            return await self.run(self.store.user_id, key)
        found = self.store.find_user(key)
        return NO_USER if found is None else found

    def api_base(self, request: Request) -> str:
        """Absolute API root as the client reached it, e.g. `http://127.0.0.1:8000/api`.

        It depends on the scheme, the Host header and the server address only, so it is
        kept per those (at most MAX_BASES: a Host header is the client's to choose)
        instead of Starlette building the request's whole URL for every answer."""
        scope = request.scope
        host = next((v for k, v in scope["headers"] if k == b"host"), None)
        key = (scope.get("scheme"), host, scope.get("server"))
        base = self._bases.get(key)
        if base is None:
            base = f"{request.url.scheme}://{request.url.netloc}{self.config.prefix}"
            if len(self._bases) < MAX_BASES:
                self._bases[key] = base
        return base

    def find(self, owner: int, upload_id: str) -> Upload:
        """The caller's upload; 404 for an unknown id and for anybody else's upload."""
        upload = self.store.get(upload_id) if is_upload_id(upload_id) else None
        if upload is None or upload.owner != owner:
            raise not_found()
        return upload

    async def check_writable(self, upload: Upload) -> None:
        """410 if expired (deleting its bytes on the way), 400 if already complete."""
        if upload.is_expired(self.now(), self.config.expire_after):
            if not upload.expired and not self.sessions.is_writing(upload.id):
                self.sessions.forget(upload.id)
                await self.run(self.store.expire, upload)
            raise ApiError(410, EXPIRED)
        if upload.status == COMPLETE:
            raise ApiError(400, ALREADY_COMPLETE)

    def check_space(self, needed: int) -> None:
        from synapse_tui.server import store

        if needed > 0 and store.disk_free(self.config.root) < needed:
            raise ApiError(507, INSUFFICIENT_STORAGE)

    def acquire(self, upload_id: str) -> None:
        if not self.sessions.try_acquire(upload_id):
            raise ApiError(409, BUSY, {"Retry-After": "1"})

    # -- MD5 after a restart -------------------------------------------------

    def ensure_catch_up(self, upload_id: str) -> None:
        """Rebuild a lost MD5 state from disk in the background; writes go on meanwhile."""
        running = self._catch_ups.get(upload_id)
        if running is not None and not running.done():
            return
        task = asyncio.get_running_loop().create_task(self._catch_up(upload_id))
        self._catch_ups[upload_id] = task

        def forget(done: asyncio.Task[None]) -> None:
            if self._catch_ups.get(upload_id) is done:
                del self._catch_ups[upload_id]

        task.add_done_callback(forget)

    async def _catch_up(self, upload_id: str) -> None:
        """Hash committed bytes (never rewritten) until the state reaches the offset."""
        path = self.store.path_for(upload_id)
        try:
            while True:
                upload = self.store.get(upload_id)
                if upload is None or upload.status == COMPLETE or upload.expired:
                    return
                if self.sessions.hash_at(upload_id, upload.offset) is not None:
                    return
                hashed, md5 = self.sessions.latest(upload_id) or (0, None)
                md5 = await self.run(
                    files.hash_range, path, hashed, upload.offset, md5, self._stopping.is_set
                )
                self.sessions.remember(upload_id, upload.offset, md5)
        except Exception:  # the upload vanished or its file is unreadable: finalize retries
            log.debug("MD5 catch-up of %s stopped", upload_id, exc_info=True)

    async def md5_for(self, upload: Upload) -> Any:
        """A private MD5 state covering the upload's `offset` bytes (caller holds the lock)."""
        md5: Any = self.sessions.hash_at(upload.id, upload.offset)
        task = self._catch_ups.get(upload.id)
        if md5 is None and task is not None:
            await asyncio.shield(task)
            md5 = self.sessions.hash_at(upload.id, upload.offset)
        if md5 is None:
            hashed, md5 = self.sessions.latest(upload.id) or (0, None)
            path = self.store.path_for(upload.id)
            md5 = await self.run(
                files.hash_range, path, hashed, upload.offset, md5, self._stopping.is_set
            )
            self.sessions.remember(upload.id, upload.offset, md5.copy())
        return md5

    # -- expiry ----------------------------------------------------------------

    async def sweep(self) -> None:
        """Delete the bytes of expired uploads and forget long-expired rows."""
        now = self.now()
        for upload in self.store.stale_uploads(now, self.config.expire_after):
            if not self.sessions.is_writing(upload.id):
                self.sessions.forget(upload.id)
                await self.run(self.store.expire, upload)
        await self.run(self.store.purge_expired, now, self.config.expire_after)

    async def sweep_forever(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.sweep()
            except Exception as exc:  # keep sweeping; a bad pass is logged, not fatal
                if disk_full(exc) or database_full(exc):
                    warn_full(exc)  # not a traceback every pass while the disk is full
                else:
                    log.exception("expiry sweep failed")


def disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def database_full(exc: BaseException) -> bool:
    """SQLITE_FULL: the database (or the disk under it) cannot grow."""
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    return code == sqlite3.SQLITE_FULL or str(exc) == "database or disk is full"


_FULL_WARNING_EVERY = 60.0
_last_full_warning = [float("-inf")]


def warn_full(exc: BaseException) -> None:
    """One log line a minute while the disk is full (every request would see it)."""
    now = time.monotonic()
    if now - _last_full_warning[0] >= _FULL_WARNING_EVERY:
        _last_full_warning[0] = now
        log.warning("storage is full, answering 507: %s", exc)
