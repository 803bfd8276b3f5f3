"""Crash harness: run the CLI in a subprocess, kill it at chosen points, run it again.

``Cli`` holds the environment of one user (host, token, state folder) and runs
``python -m synapse_tui.cli`` with it, either to completion (``run``) or in the
background (``start``) so a test can wait for a point -- a request seen by a
``ThreadedFaultProxy``, a journal row -- and then ``kill`` (SIGKILL) or ``interrupt``
(SIGINT) it. ``journal_rows`` reads the journal without taking any lock.

``python -m tests.faults.crash --kill-in-journal-update N [--when COLUMN] -- <cli args>``
runs the CLI with the journal patched to SIGKILL the process inside the Nth
``Journal.update`` transaction (counting only updates that set COLUMN), after the UPDATE
and before COMMIT: a crash during a journal write. ``--kill-in-journal-complete`` does the
same inside the transaction that marks a job done and adds it to the ledger.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str
    elapsed: float

    def events(self) -> list[dict[str, Any]]:
        out = []
        for line in self.stdout.splitlines():
            line = line.strip()
            if line.startswith("{"):
                out.append(json.loads(line))
        return out

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events() if e.get("event") == kind]

    @property
    def summary(self) -> dict[str, Any]:
        [summary] = self.of("summary")
        return summary


@dataclass
class Cli:
    host: str
    token: str
    state_dir: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    cwd: Path = REPO_ROOT  # the folder the CLI runs in (relative paths start there)

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        pythonpath = env.get("PYTHONPATH")
        env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + pythonpath if pythonpath else "")
        env["SYNAPSE_HOST"] = self.host
        env["SYNAPSE_ACCESS_TOKEN"] = self.token
        env["SYNAPSE_TUI_STATE_DIR"] = str(self.state_dir)
        env["PYTHONUNBUFFERED"] = "1"
        env.update(self.extra_env)
        return env

    def argv(self, args: Sequence[str | bytes], wrapper: Sequence[str] = ()) -> list[Any]:
        if wrapper:
            return [sys.executable, "-m", "tests.faults.crash", *wrapper, "--", *args]
        return [sys.executable, "-m", "synapse_tui.cli", *args]

    def run(self, *args: str | bytes, timeout: float = 60.0, wrapper: Sequence[str] = ()) -> Result:
        started = time.monotonic()
        proc = subprocess.run(
            self.argv(args, wrapper),
            env=self.env(),
            cwd=self.cwd,
            capture_output=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        return Result(
            proc.returncode,
            proc.stdout.decode("utf-8", "replace"),
            proc.stderr.decode("utf-8", "replace"),
            time.monotonic() - started,
        )

    def start(self, *args: str | bytes, wrapper: Sequence[str] = ()) -> Running:
        proc = subprocess.Popen(
            self.argv(args, wrapper),
            env=self.env(),
            cwd=self.cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
        return Running(proc, time.monotonic())

    def kill_when(self, predicate: Callable[[], object], what: str, *args: str | bytes) -> Result:
        """Start the CLI with `args`, wait (30 s at most) until `predicate()` holds, then
        SIGKILL it, whether or not the wait succeeded."""
        run = self.start(*args)
        try:
            wait_for(predicate, 30, what)
        finally:
            killed = run.kill()
        return killed

    def status(self) -> list[dict[str, Any]]:
        result = self.run("status", "--json", "--all")
        assert result.returncode == 0, result.stderr
        return result.of("job")

    def journal_rows(self) -> list[dict[str, Any]]:
        return journal_rows(self.state_dir)


@dataclass
class Running:
    proc: subprocess.Popen[bytes]
    started: float

    def kill(self) -> Result:
        """SIGKILL: no cleanup, no journal flush, nothing."""
        self.proc.kill()
        return self.collect()

    def interrupt(self) -> None:
        self.proc.send_signal(signal.SIGINT)

    def collect(self, timeout: float = 30.0) -> Result:
        out, err = self.proc.communicate(timeout=timeout)
        return Result(
            self.proc.returncode,
            out.decode("utf-8", "replace"),
            err.decode("utf-8", "replace"),
            time.monotonic() - self.started,
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def ensure_dead(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate(timeout=10)


def journal_rows(state_dir: Path) -> list[dict[str, Any]]:
    """The journal's job rows, read-only (works while another process writes)."""
    path = state_dir / "journal.sqlite3"
    if not path.exists():
        return []
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    db.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in db.execute("SELECT * FROM jobs ORDER BY id")]
    except sqlite3.OperationalError:
        return []
    finally:
        db.close()


def wait_for(predicate: Callable[[], object], timeout: float, what: str) -> None:
    """Poll `predicate` until true; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _main(argv: list[str]) -> int:
    """Run the CLI with a crash armed inside the Nth journal update (see the docstring)."""
    split = argv.index("--")
    options, cli_args = argv[:split], argv[split + 1 :]
    from synapse_tui.engine import journal as journal_module

    original_tx = journal_module.Journal._tx

    def crash_in_next_tx(journal: Any) -> None:
        from contextlib import contextmanager

        @contextmanager
        def tx() -> Any:
            with original_tx(journal) as db:
                yield db
                # the statements ran inside the transaction; die before COMMIT
                os.kill(os.getpid(), signal.SIGKILL)

        journal._tx = tx

    if "--kill-in-journal-complete" in options:
        original_complete = journal_module.Journal.complete

        def complete(self: Any, *args: Any, **kwargs: Any) -> None:
            crash_in_next_tx(self)
            original_complete(self, *args, **kwargs)

        journal_module.Journal.complete = complete  # type: ignore[method-assign]
    else:
        nth = int(options[options.index("--kill-in-journal-update") + 1])
        match = options[options.index("--when") + 1] if "--when" in options else ""
        original_update = journal_module.Journal.update
        calls = 0

        def update(self: Any, job_id: int, **values: Any) -> None:
            nonlocal calls
            if not match or match in values:
                calls += 1
                if calls == nth:
                    crash_in_next_tx(self)
            original_update(self, job_id, **values)

        journal_module.Journal.update = update  # type: ignore[method-assign]
    from synapse_tui.cli import main

    return main(cli_args)


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
