"""In-memory state per upload: who is writing it now, and its running MD5.

Only the event loop thread touches this, so a check-and-set without an `await`
in between is atomic. hashlib states cannot be persisted; after a restart the
MD5 is recomputed from disk the first time it is needed.
"""

from __future__ import annotations

from typing import Any


class Sessions:
    """Writer locks and incremental MD5 states, keyed by upload id."""

    def __init__(self) -> None:
        self._writers: set[str] = set()
        self._hashes: dict[str, tuple[int, Any]] = {}

    def try_acquire(self, upload_id: str) -> bool:
        """Become the only request writing or finalizing `upload_id`; False if taken."""
        if upload_id in self._writers:
            return False
        self._writers.add(upload_id)
        return True

    def release(self, upload_id: str) -> None:
        self._writers.discard(upload_id)

    def is_writing(self, upload_id: str) -> bool:
        return upload_id in self._writers

    def hash_at(self, upload_id: str, offset: int) -> Any | None:
        """A private copy of the MD5 state covering exactly `offset` bytes, if known."""
        known = self._hashes.get(upload_id)
        if known is None or known[0] != offset:
            return None
        return known[1].copy()

    def latest(self, upload_id: str) -> tuple[int, Any] | None:
        """The most recent known state (offset, private MD5 copy), maybe behind the offset."""
        known = self._hashes.get(upload_id)
        return None if known is None else (known[0], known[1].copy())

    def remember(self, upload_id: str, offset: int, md5: Any) -> None:
        known = self._hashes.get(upload_id)
        if known is None or known[0] <= offset:
            self._hashes[upload_id] = (offset, md5)

    def forget(self, upload_id: str) -> None:
        self._hashes.pop(upload_id, None)
