"""Another process holding a journal's SQLite write lock (`BEGIN IMMEDIATE`), for the tests
of what must wait for it and what must not (the journal's writer thread, the engine's loop)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

# Holds the write lock until a line arrives on stdin, or for argv[2] seconds when given.
SCRIPT = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
db.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
if len(sys.argv) > 2:
    time.sleep(float(sys.argv[2]))
else:
    sys.stdin.readline()
db.execute("COMMIT")
print("released", flush=True)
"""


class LockHolder:
    """`with LockHolder(path) as holder:` the lock is held once the block starts; it goes
    at `holder.release()`, or by itself after `seconds`; a holder still running at the
    block's end is killed."""

    def __init__(self, path: Path | str, seconds: float | None = None) -> None:
        args = [sys.executable, "-c", SCRIPT, str(path)]
        if seconds is not None:
            args.append(str(seconds))
        self.process = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )

    def __enter__(self) -> LockHolder:
        assert self.process.stdout is not None
        assert self.process.stdout.readline().strip() == "locked"
        return self

    def held(self) -> bool:
        return self.process.poll() is None

    def release(self) -> None:
        """Let go of the lock, and wait until it has."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write("go\n")
        self.process.stdin.flush()
        assert self.process.stdout.readline().strip() == "released"

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(30)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


async def until(check: Callable[[], object], timeout: float, what: str) -> None:
    """Wait, on the loop, for `check()` to hold; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)
