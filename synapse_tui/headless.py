"""Headless progress: a live line on a terminal, plain periodic lines in logs, or NDJSON."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Any, TextIO, cast

from synapse_tui.config import redact
from synapse_tui.engine.events import (
    Event,
    FatalStop,
    JobDone,
    JobElsewhere,
    JobFailed,
    JobQueued,
    JobSkipped,
    LogMessage,
    ScanProgress,
    TotalProgress,
    UnitRegistered,
)
from synapse_tui.units import format_duration, format_rate, format_size

# Lines for a pipe or a file are flushed within this many seconds, several at a time: a
# batch of small files prints two JSON lines a file, and a flush per line cost a system
# call and a wake-up of the reading process per line. A terminal gets every line at once.
FLUSH_DELAY = 0.1


class PipeGuard:
    """A stream whose reader may go away (`upload --json | head -1`): after a broken pipe
    its output is dropped, quietly, and the batch goes on (the journal keeps the record).

    For a pipe or a file it also keeps what is written until `flush()`: the stream's own
    buffer is no help under PYTHONUNBUFFERED=1 (common in containers), where every line
    became a system call of its own. Past BUFFER_LIMIT it writes without waiting.
    """

    BUFFER_LIMIT = 1 << 16

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.broken = False
        try:
            self.tty = stream.isatty()
        except (AttributeError, ValueError):
            self.tty = False
        self._pending: list[str] = []
        self._pending_size = 0
        if not self.tty:
            atexit.register(self._flush_at_exit)

    def write(self, text: str) -> int:
        if self.broken:
            return len(text)
        if not self.tty:
            self._pending.append(text)
            self._pending_size += len(text)
            if self._pending_size >= self.BUFFER_LIMIT:
                self._write_pending()
            return len(text)
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._broke()
        return len(text)

    def _write_pending(self) -> None:
        text = "".join(self._pending)
        self._pending.clear()
        self._pending_size = 0
        if text and not self.broken:
            try:
                self._stream.write(text)
            except BrokenPipeError:
                self._broke()

    def flush(self) -> None:
        self._write_pending()
        if not self.broken:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._broke()

    def _flush_at_exit(self) -> None:
        """Lines still kept when the interpreter exits (an unexpected error) go out too."""
        if self._pending:
            with contextlib.suppress(OSError, ValueError):  # closed, or gone
                self.flush()

    def isatty(self) -> bool:
        return self.tty

    def _broke(self) -> None:
        self.broken = True
        # What is still buffered would fail again when the interpreter flushes at exit.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(devnull, self._stream.fileno())
            finally:
                os.close(devnull)
        except (OSError, ValueError, AttributeError):
            pass


@dataclass
class Summary:
    """What happened to a batch; the exit code follows from it."""

    uploaded: int = 0
    units: int = 0
    uploaded_bytes: int = 0
    skipped: int = 0
    failed: int = 0
    resumable: int = 0
    elsewhere: int = 0  # left to another synapse-tui process that drives (or drove) them
    started: float = field(default_factory=time.monotonic)
    fatal: str | None = None

    def as_dict(self) -> dict[str, Any]:
        elapsed = time.monotonic() - self.started
        return {
            "event": "summary",
            "uploaded": self.uploaded,
            "skipped": self.skipped,
            "failed": self.failed,
            "resumable": self.resumable,
            "elsewhere": self.elsewhere,
            "units": self.units,
            "bytes": self.uploaded_bytes,
            "seconds": round(elapsed, 3),
            "rate": round(self.uploaded_bytes / elapsed, 1) if elapsed > 0 else 0.0,
            "error": self.fatal,
        }

    @property
    def exit_code(self) -> int:
        if self.fatal:
            return 2
        # A file left to another process was not uploaded by this run: not a success here.
        return 1 if (self.failed or self.resumable or self.elsewhere) else 0


class Reporter:
    """Turns engine events into output. Subclasses choose the form."""

    def __init__(self, out: TextIO, err: TextIO, secrets: list[str], verbose: bool = False):
        self.out = cast(TextIO, PipeGuard(out))
        self.err = cast(TextIO, PipeGuard(err))
        self.secrets = secrets
        self.verbose = verbose
        self.summary = Summary()
        self._unflushed: set[TextIO] = set()
        self._flush_timer: asyncio.TimerHandle | None = None

    def clean(self, text: str) -> str:
        return redact(text, self.secrets)

    def __call__(self, event: Event) -> None:
        s = self.summary
        if isinstance(event, JobDone):
            s.uploaded += 1
            s.uploaded_bytes += event.size
        elif isinstance(event, JobSkipped):
            s.skipped += 1
        elif isinstance(event, JobFailed):
            if event.resumable:
                s.resumable += 1
            else:
                s.failed += 1
        elif isinstance(event, FatalStop):
            s.fatal = self.clean(event.error)
        elif isinstance(event, JobElsewhere):
            s.elsewhere += 1
        elif isinstance(event, UnitRegistered):
            s.units += 1
        self.show(event)

    def show(self, event: Event) -> None:
        raise NotImplementedError

    def error_line(self, text: str) -> None:
        self.flush()  # what came before it on stdout first
        self.err.write(self.clean(text) + "\n")
        self.err.flush()

    def flush_soon(self, stream: TextIO) -> None:
        """Flush `stream` now on a terminal (or with no event loop), else within FLUSH_DELAY."""
        if stream.isatty():  # a PipeGuard's answer, asked once
            stream.flush()
            return
        self._unflushed.add(stream)
        if self._flush_timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.flush()
                return
            self._flush_timer = loop.call_later(FLUSH_DELAY, self.flush)

    def flush(self) -> None:
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        while self._unflushed:
            self._unflushed.pop().flush()

    def finish(self) -> None:
        self.flush()


class JsonReporter(Reporter):
    """One JSON object per line on stdout; errors also as one line on stderr."""

    def emit(self, obj: dict[str, Any]) -> None:
        self.out.write(self.clean(json.dumps(obj, ensure_ascii=False)) + "\n")
        self.flush_soon(self.out)

    def show(self, event: Event) -> None:
        if isinstance(event, JobDone):
            self.emit(
                {
                    "event": "file_done",
                    "path": event.path,
                    "size": event.size,
                    "md5": event.md5,
                    "upload_id": event.upload_id,
                    "resumed_from": event.resumed_from,
                }
            )
        elif isinstance(event, JobFailed):
            self.emit(
                {
                    "event": "file_failed",
                    "path": event.path,
                    "error": event.error,
                    "resumable": event.resumable,
                }
            )
            self.error_line(f"error: {event.path}: {event.error}")
        elif isinstance(event, JobSkipped):
            self.emit({"event": "file_skipped", "path": event.path, "reason": event.reason})
        elif isinstance(event, JobElsewhere):
            self.emit({"event": "file_elsewhere", "path": event.path, "reason": event.reason})
        elif isinstance(event, UnitRegistered):
            self.emit(
                {
                    "event": "unit_created",
                    "unit_id": event.unit_id,
                    "collection": event.collection,
                    "paths": event.paths,
                }
            )
        elif isinstance(event, JobQueued):
            self.emit(
                {
                    "event": "file_queued",
                    "path": event.path,
                    "size": event.size,
                    "resumed": event.resumed,
                }
            )
        elif isinstance(event, TotalProgress):
            now = time.monotonic()
            if now - getattr(self, "_last", 0.0) >= 1.0:
                self._last = now
                self.emit(
                    {
                        "event": "progress",
                        "bytes_done": event.bytes_done,
                        "bytes_total": event.bytes_total,
                        "files_done": event.files_done,
                        "files_total": event.files_total,
                        "rate": round(event.rate, 1),
                        "eta": None if event.eta is None else round(event.eta, 1),
                    }
                )
        elif isinstance(event, ScanProgress) and event.done:
            self.emit(
                {
                    "event": "scan",
                    "files": event.files,
                    "bytes": event.bytes,
                    "duplicates": event.duplicates,
                    "already_uploaded": event.already_uploaded,
                    "skipped": event.skipped,
                    "failed": event.failed,
                }
            )
        elif isinstance(event, LogMessage) and (event.level != "info" or self.verbose):
            self.emit({"event": "log", "level": event.level, "message": event.message})
        elif isinstance(event, FatalStop):
            self.error_line(f"error: {event.error}")

    def finish(self) -> None:
        self.emit(self.summary.as_dict())
        self.flush()


class TextReporter(Reporter):
    """Lines for people. On a terminal a live status line; elsewhere periodic plain lines."""

    def __init__(self, *args: Any, live: bool, interval: float = 5.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.live = live
        self.interval = interval
        self._last_line = 0.0
        self._status = ""

    def _print(self, stream: TextIO, text: str) -> None:
        if self.live and self._status:
            stream.write("\r\x1b[2K")
        stream.write(self.clean(text) + "\n")
        if self.live and self._status:
            self.out.write(self._status)
        if stream is not self.out:
            self.flush()  # stdout's earlier lines before this one
            stream.flush()
        self.flush_soon(self.out)

    def show(self, event: Event) -> None:
        if isinstance(event, JobDone):
            resumed = (
                f", resumed at {format_size(event.resumed_from)}" if event.resumed_from else ""
            )
            self._print(
                self.out,
                f"done     {event.path} ({format_size(event.size)}, md5 {event.md5}{resumed})",
            )
        elif isinstance(event, JobFailed):
            tag = "paused " if event.resumable else "FAILED "
            self._print(self.err, f"{tag}  {event.path}: {event.error}")
        elif isinstance(event, JobSkipped):
            self._print(self.out, f"skipped  {event.path}: {event.reason}")
        elif isinstance(event, JobElsewhere):
            self._print(self.err, f"elsewhere {event.path}: {event.reason}")
        elif isinstance(event, UnitRegistered):
            names = ", ".join(event.paths)
            self._print(
                self.out, f"unit     {event.unit_id} in collection {event.collection}: {names}"
            )
        elif isinstance(event, LogMessage):
            if event.level != "info" or self.verbose:
                self._print(self.err, f"{event.level}: {event.message}")
        elif isinstance(event, FatalStop):
            self._print(self.err, f"error: {event.error}")
        elif isinstance(event, ScanProgress) and event.done:
            self._print(
                self.out,
                f"scanned  {event.files} files, {format_size(event.bytes)}"
                f" ({event.duplicates} duplicates, {event.already_uploaded} already uploaded,"
                f" {event.skipped} skipped, {event.failed} failed)",
            )
        elif isinstance(event, TotalProgress):
            self._progress(event)

    def _progress(self, p: TotalProgress) -> None:
        if not p.files_total:
            return
        pct = 100.0 * p.bytes_done / p.bytes_total if p.bytes_total else 100.0
        line = (
            f"{p.files_done}/{p.files_total} files  {format_size(p.bytes_done)}/"
            f"{format_size(p.bytes_total)} ({pct:.0f}%)  {format_rate(p.rate)}"
            f"  ETA {format_duration(p.eta)}"
        )
        if self.live:
            self._status = line
            self.out.write("\r\x1b[2K" + line)
            self.out.flush()
            return
        now = time.monotonic()
        if now - self._last_line >= self.interval:
            self._last_line = now
            self.out.write(time.strftime("%H:%M:%S ") + line + "\n")
            self.flush_soon(self.out)

    def finish(self) -> None:
        if self.live and self._status:
            self.out.write("\r\x1b[2K")
            self._status = ""
        d = self.summary.as_dict()
        self.out.write(
            f"{d['uploaded']} uploaded ({format_size(d['bytes'])} in {d['seconds']:.1f}s,"
            f" {format_rate(d['rate'])}), {d['skipped']} skipped, {d['failed']} failed"
            + (f", {d['resumable']} left resumable" if d["resumable"] else "")
            + (f", {d['elsewhere']} left to another synapse-tui" if d["elsewhere"] else "")
            + "\n"
        )
        self.flush_soon(self.out)
        super().finish()


def make_reporter(json_mode: bool, secrets: list[str], verbose: bool = False) -> Reporter:
    if json_mode:
        return JsonReporter(sys.stdout, sys.stderr, secrets, verbose)
    live = sys.stdout.isatty()
    return TextReporter(sys.stdout, sys.stderr, secrets, verbose, live=live)


def catch_interrupts(loop: asyncio.AbstractEventLoop) -> asyncio.Event:
    """Ctrl-C and SIGTERM set the event returned (the command saves its state and exits
    130); a second Ctrl-C exits at once."""
    interrupted = asyncio.Event()
    presses = 0

    def on_signal() -> None:
        nonlocal presses
        presses += 1
        if presses > 1:
            os._exit(130)  # second Ctrl-C forces
        interrupted.set()

    loop.add_signal_handler(signal.SIGINT, on_signal)
    loop.add_signal_handler(signal.SIGTERM, on_signal)
    return interrupted
