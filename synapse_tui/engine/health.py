"""Whether the backend answers: failing since the first transient error, until progress."""

from __future__ import annotations

import time
from collections.abc import Callable

from synapse_tui.engine.events import BackendState, Event


class BackendHealth:
    """Emits BackendState when uploads start failing and when the backend answers again.

    Failing: a transient error (connection refused, 5xx, timeout) with no progress since.
    Reachable: an upload's offset advanced or a file finished. Changes only are emitted, so
    the hot paths can report every chunk at the cost of one comparison.
    """

    def __init__(self, emit: Callable[[Event], None], clock: Callable[[], float] = time.time):
        self._emit = emit
        self._clock = clock
        self.failing_since: float | None = None
        self.reachable = False  # True once the backend acknowledged something

    def failing(self, error: str) -> None:
        if self.failing_since is None:
            self.failing_since = self._clock()
            self._emit(BackendState(False, self.failing_since, error))

    def ok(self) -> None:
        if self.failing_since is not None or not self.reachable:
            self.failing_since = None
            self.reachable = True
            self._emit(BackendState(True, None))
