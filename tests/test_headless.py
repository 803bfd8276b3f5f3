"""Headless output: when lines reach a pipe, a file or a terminal."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from synapse_tui.engine.events import JobDone, JobFailed, JobQueued
from synapse_tui.headless import FLUSH_DELAY, JsonReporter, TextReporter


class Sink:
    """A stream that shows what a reader would see: only what was flushed."""

    def __init__(self, name: str, seen: list[tuple[str, str]], tty: bool = False) -> None:
        self.name = name
        self.seen = seen  # (stream name, text) in the order they were flushed
        self.tty = tty
        self.pending = ""
        self.flushes = 0

    def write(self, text: str) -> int:
        self.pending += text
        return len(text)

    def flush(self) -> None:
        self.flushes += 1
        if self.pending:
            self.seen.append((self.name, self.pending))
            self.pending = ""

    def isatty(self) -> bool:
        return self.tty


def events(n: int) -> list[JobQueued | JobDone]:
    out: list[JobQueued | JobDone] = []
    for i in range(n):
        out.append(JobQueued(i, f"f{i}", 1))
        out.append(JobDone(i, f"f{i}", 1, "0" * 32, f"u{i}", 0))
    return out


def lines(seen: list[tuple[str, str]], stream: str = "out") -> list[str]:
    return "".join(text for name, text in seen if name == stream).splitlines()


async def test_a_pipe_gets_many_lines_in_one_flush_within_the_delay() -> None:
    seen: list[tuple[str, str]] = []
    out, err = Sink("out", seen), Sink("err", seen)
    reporter = JsonReporter(out, err, [])  # type: ignore[arg-type]
    for event in events(50):
        reporter(event)
    assert seen == [] and out.flushes == 0  # nothing yet: the lines wait for the timer
    await asyncio.sleep(FLUSH_DELAY * 2)  # the flush timer is due first
    assert len(lines(seen)) == 100
    assert out.flushes == 1
    reporter(JobDone(99, "last", 1, "0" * 32, "u99", 0))
    reporter.finish()  # the last line and the summary, without waiting
    assert lines(seen)[-2:][0].startswith('{"event": "file_done", "path": "last"')
    assert '"event": "summary"' in lines(seen)[-1]


async def test_a_terminal_gets_each_line_at_once() -> None:
    seen: list[tuple[str, str]] = []
    out, err = Sink("out", seen, tty=True), Sink("err", seen, tty=True)
    reporter = JsonReporter(out, err, [])  # type: ignore[arg-type]
    for n, event in enumerate(events(3), 1):
        reporter(event)
        assert len(lines(seen)) == n


def test_without_an_event_loop_lines_are_flushed_at_once() -> None:
    seen: list[tuple[str, str]] = []
    reporter = TextReporter(Sink("out", seen), Sink("err", seen), [], live=False)
    reporter(JobDone(1, "a.bin", 1, "0" * 32, "u1", 0))
    assert lines(seen) == [f"done     a.bin (1 B, md5 {'0' * 32})"]


async def test_an_error_line_comes_after_the_lines_before_it() -> None:
    seen: list[tuple[str, str]] = []
    for make in (
        lambda o, e: JsonReporter(o, e, []),
        lambda o, e: TextReporter(o, e, [], live=False),
    ):
        seen.clear()
        reporter = make(Sink("out", seen), Sink("err", seen))
        reporter(JobQueued(1, "a.bin", 1))
        reporter(JobDone(2, "b.bin", 1, "0" * 32, "u2", 0))
        reporter(JobFailed(3, "c.bin", "boom"))
        names = [name for name, _ in seen]
        assert names.index("err") > names.index("out"), seen
        assert any("b.bin" in text for name, text in seen[: names.index("err")] if name == "out")
        reporter.finish()


class ClosedPipe(Sink):
    """A pipe whose reader went away after the first flush."""

    def flush(self) -> None:
        if self.flushes:
            raise BrokenPipeError(32, "Broken pipe")
        super().flush()


async def test_a_reader_that_went_away_does_not_stop_the_batch() -> None:
    seen: list[tuple[str, str]] = []
    out = ClosedPipe("out", seen)
    reporter = JsonReporter(out, Sink("err", seen), [])  # type: ignore[arg-type]
    reporter(JobQueued(1, "a.bin", 1))
    reporter.flush()
    for event in events(20):
        reporter(event)  # no exception reaches the engine
    reporter(JobFailed(3, "c.bin", "boom"))  # flushes stdout first: that write fails too
    reporter.finish()
    assert len(lines(seen)) == 1  # what was read before the reader left
    assert reporter.summary.uploaded == 20  # the batch was counted all the same
    assert [text for name, text in seen if name == "err"] == ["error: c.bin: boom\n"]


class Unbuffered(Sink):
    """A stream without a buffer of its own (PYTHONUNBUFFERED=1): each write reaches the
    reader as it is made."""

    def write(self, text: str) -> int:
        self.seen.append((self.name, text))
        return len(text)


async def test_lines_wait_together_even_when_the_stream_has_no_buffer() -> None:
    seen: list[tuple[str, str]] = []
    reporter = JsonReporter(Unbuffered("out", seen), Sink("err", seen), [])  # type: ignore[arg-type]
    for event in events(50):
        reporter(event)
    assert seen == []
    reporter.flush()
    assert len(seen) == 1 and len(lines(seen)) == 100  # one write for the hundred lines
    many = events(2000)  # far past the guard's limit: written on the way, never held
    for event in many:
        reporter(event)
    held = sum(len(text) for _, text in seen[1:])
    assert len(seen) > 2 and held > 0
    reporter.finish()
    assert len(lines(seen)) == 100 + len(many) + 1  # the summary last


def test_lines_still_kept_at_exit_are_written(tmp_path: Path) -> None:
    script = (
        "import asyncio\n"
        "from synapse_tui.engine.events import JobQueued\n"
        "from synapse_tui.headless import make_reporter\n"
        "async def main():\n"
        "    make_reporter(True, [])(JobQueued(1, 'kept.bin', 1))\n"
        "    raise SystemExit(3)\n"
        "asyncio.run(main())\n"
    )
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 3
    assert '"path": "kept.bin"' in done.stdout and done.stderr == ""
