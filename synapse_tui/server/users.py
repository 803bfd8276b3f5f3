"""The owner-key -> user-id cache of the store: least recently used first out, thread-safe."""

from __future__ import annotations

import threading
from collections import OrderedDict

USER_CACHE_SIZE = 1024

# User ids come from AUTOINCREMENT and start at 1: no row has this one. It stands for
# an authenticated owner that has stored nothing yet, so it owns nothing.
NO_USER = 0


class UserCache:
    """At most `size` owner keys with their ids.

    A tenant header is the client's to choose, so the keys one token can present are
    unbounded: without a bound this dict grew with every new tenant.
    """

    def __init__(self, size: int = USER_CACHE_SIZE) -> None:
        self.size = size
        self._ids: OrderedDict[str, int] = OrderedDict()
        self._lock = threading.Lock()  # read on the loop, filled from worker threads

    def get(self, key: str) -> int | None:
        with self._lock:
            uid = self._ids.get(key)
            if uid is not None:
                self._ids.move_to_end(key)
            return uid

    def put(self, key: str, uid: int) -> None:
        with self._lock:
            self._ids[key] = uid
            self._ids.move_to_end(key)
            while len(self._ids) > self.size:
                self._ids.popitem(last=False)

    def __len__(self) -> int:
        return len(self._ids)
