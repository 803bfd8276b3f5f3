"""Retries that show: JobRetrying per attempt, the backend's state, and retry-now."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from synapse_tui.engine.events import BackendState, Event, JobDone, JobRetrying, TotalProgress
from synapse_tui.engine.limits import Backoff
from tests.engine.fakeserver import FakeServer
from tests.engine.test_uploader import CHUNK, make_file, manager


async def until(condition: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_a_retrying_job_says_so_and_retry_now_cuts_the_backoff(tmp_path: Path) -> None:
    server = FakeServer()
    busy = httpx.Response(503, json={"detail": "busy"})
    server.before[("PUT", 2)] = lambda request: busy
    server.before[("PUT", 3)] = lambda request: busy
    src = make_file(tmp_path, "a.bin", 3 * CHUNK)
    events: list[Event] = []
    async with manager(server, tmp_path / "state", events, retries=5) as m:
        # Backoffs of 30 s and 60 s, no jitter: only a retry-now finishes within the test.
        m.backoff = Backoff(base=30.0, cap=60.0, rand=lambda a, b: b)
        started = time.monotonic()
        await m.add_paths([str(src)])

        def retrying() -> list[JobRetrying]:
            return [e for e in events if isinstance(e, JobRetrying)]

        await until(lambda: len(retrying()) == 1)
        first = retrying()[0]
        assert (first.attempt, first.budget, first.delay) == (1, 5, 30.0)
        assert "503" in first.error or "busy" in first.error
        states = [e for e in events if isinstance(e, BackendState)]
        assert [s.ok for s in states] == [True, False]  # chunk 1 landed, then it failed
        assert states[-1].failing_since is not None
        assert abs(states[-1].failing_since - time.time()) < 60

        m.retry_failed()  # `r`: retry now
        await until(lambda: len(retrying()) == 2)
        assert retrying()[1].attempt == 2 and retrying()[1].delay == 60.0
        m.retry_failed()
        await until(lambda: any(isinstance(e, JobDone) for e in events))
        assert time.monotonic() - started < 20  # neither backoff was slept out
        states = [e for e in events if isinstance(e, BackendState)]
        assert [s.ok for s in states] == [True, False, True]
        assert states[-1].failing_since is None
    totals = [e for e in events if isinstance(e, TotalProgress)]
    assert totals and not totals[-1].stalled


async def test_queueing_a_cancelled_file_again_resumes_its_upload(tmp_path: Path) -> None:
    server = FakeServer()
    src = make_file(tmp_path, "a.bin", 4 * CHUNK + 5)
    events: list[Event] = []
    async with manager(server, tmp_path / "state", events) as m:

        def cancel_now(request: httpx.Request, response: httpx.Response) -> None:
            [job_id] = list(m.jobs)
            m.cancel(job_id)  # the second chunk landed; its answer is never read

        server.after[("PUT", 2)] = cancel_now
        await m.add_paths([str(src)])
        await m.wait_idle()
        [job] = m.window(0, 10)  # every job of the manager (a finished one leaves memory)
        assert job.state.value == "cancelled" and not any(isinstance(e, JobDone) for e in events)
        await m.add_paths([str(src)])  # the same file again
        await m.wait_idle()
        [again] = m.window(0, 10)
        assert again.id == job.id and again.state.value == "done"
    [upload] = server.uploads.values()  # one upload: resumed, not a second one from 0
    assert bytes(upload.data) == src.read_bytes()
    assert server.put_bytes == src.stat().st_size  # no byte sent twice
