"""A manager closed while its early storage question is still unanswered takes that
question down with it: no task of the closed manager lives on (holding its connection
and client until the read timeout, or pending when the loop ends)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from synapse_tui.engine.presigned import service
from tests.faults.helpers import make_manager


def _early_tasks() -> list[asyncio.Task[object]]:
    return [t for t in asyncio.all_tasks() if t.get_name() == "storage-discovery"]


@contextlib.asynccontextmanager
async def silent_backend() -> AsyncIterator[tuple[str, asyncio.Event]]:
    """A loopback server that reads each request and never answers; (its API URL, set
    when a request came)."""
    asked = asyncio.Event()
    done = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            await reader.readuntil(b"\r\n\r\n")
            asked.set()
            await done.wait()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/api", asked
    finally:
        done.set()
        server.close()
        await server.wait_closed()


async def _closed_with_nothing_left(m: Any, early: asyncio.Task[object]) -> None:
    """Close `m`; its early question must have ended with it."""
    await m.close()
    m.journal.close()
    pending = [t for t in _early_tasks() if not t.done()]
    for task in pending:  # the old code's leftover: not this test's to leave running
        task.cancel()
    assert early.done() and not pending


async def test_closing_the_manager_ends_its_unanswered_early_question(tmp_path: Path) -> None:
    async with silent_backend() as (url, asked):
        m = make_manager(url, "tok", tmp_path, [])
        service(m).ask_early()
        [early] = _early_tasks()
        await asyncio.wait_for(asked.wait(), 10)  # the question is out, unanswered
        await _closed_with_nothing_left(m, early)


async def test_closing_ends_the_early_question_a_cancelled_job_was_waiting_for(
    tmp_path: Path,
) -> None:
    """A job's `discover` waiting for the early question when the manager closes: close
    cancels the job's task first, then the question must still end with the manager (it
    used to be taken out of the service by `discover`, where `close` no longer saw it)."""
    async with silent_backend() as (url, asked):
        m = make_manager(url, "tok", tmp_path, [])
        svc = service(m)
        svc.ask_early()
        [early] = _early_tasks()
        await asyncio.wait_for(asked.wait(), 10)
        job = asyncio.create_task(svc.discover())  # as a job's task, on its first file
        async with asyncio.timeout(10):
            while not svc._discovering.locked():  # inside discover, waiting for the answer
                await asyncio.sleep(0.005)
        job.cancel()  # as `UploadManager.close` cancels the running jobs first
        with contextlib.suppress(asyncio.CancelledError):
            await job
        await _closed_with_nothing_left(m, early)
