"""The journal's checkpoints, on a thread of their own."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from pathlib import Path


class Checkpointer:
    """Copies the WAL back into the database on a thread of its own, when poked.

    SQLite's automatic checkpoint runs inside the commit that crosses its threshold: with
    synchronous=NORMAL that is two fsyncs, 15-22 ms during which the engine's loop (and
    every upload) waited, once every ~250 commits of a many-small-files batch. A PASSIVE
    checkpoint here blocks no writer; SQLite releases the GIL while it runs.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.ran = threading.Event()  # set after each checkpoint (for tests)

    def poke(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="synapse-journal-checkpoint", daemon=True
            )
            self._thread.start()
        self._wake.set()

    def stop(self) -> None:
        if self._thread is not None:
            self._stopping = True
            self._wake.set()
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        db = sqlite3.connect(self._path, timeout=30, isolation_level=None)
        try:
            while True:
                self._wake.wait()
                self._wake.clear()
                if self._stopping:
                    return
                with contextlib.suppress(sqlite3.Error):  # the next poke tries again
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)")
                self.ran.set()
        finally:
            db.close()
