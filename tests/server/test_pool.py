"""The backend's worker pool: `call` answers the loop directly; `submit` is a plain Executor."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from synapse_tui.server.pool import LeanPool, off_loop


def _fail() -> None:
    raise ValueError("from the worker")


async def test_call_runs_in_a_worker_and_answers_the_loop_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loop = asyncio.get_running_loop()
    wakeups: list[Any] = []
    real = loop.call_soon_threadsafe

    def counting(callback: Any, *args: Any, **kwargs: Any) -> Any:
        wakeups.append(callback)
        return real(callback, *args, **kwargs)

    monkeypatch.setattr(loop, "call_soon_threadsafe", counting)
    pool = LeanPool(2, "test-pool")
    try:
        name = await pool.call(lambda: threading.current_thread().name)
        assert name.startswith("test-pool_") and name != threading.current_thread().name
        assert len(wakeups) == 1  # the answer: no chained concurrent future
        with pytest.raises(ValueError, match="from the worker"):
            await pool.call(_fail)
        assert await off_loop(pool, pow, 2, 10) == 1024
    finally:
        pool.shutdown()


async def test_a_call_cancelled_before_a_worker_takes_it_never_runs() -> None:
    pool = LeanPool(1, "test-pool")
    gate = threading.Event()
    ran: list[str] = []
    try:
        first = pool.call(gate.wait, 10)  # holds the only worker
        second = pool.call(ran.append, "second")
        second.cancel()
        gate.set()
        assert await first is True
        await pool.call(ran.append, "third")  # runs after where second was
        assert ran == ["third"]
    finally:
        pool.shutdown()


def test_submit_and_shutdown_behave_as_an_executor() -> None:
    pool = LeanPool(2, "test-pool")
    assert pool.submit(pow, 3, exp=2).result(10) == 9
    both, gate = threading.Barrier(3), threading.Event()

    def hold() -> bool:
        both.wait(10)
        return gate.wait(10)

    held = [pool.submit(hold) for _ in range(2)]
    both.wait(10)  # both workers are busy: the next one waits in the queue
    queued = pool.submit(pow, 2, 3)
    pool.shutdown(wait=False, cancel_futures=True)
    assert queued.cancelled()
    with pytest.raises(RuntimeError):
        pool.submit(pow, 2, 2)
    gate.set()
    assert all(h.result(10) is True for h in held)  # what ran, finished
    pool.shutdown()  # twice is fine


async def test_off_loop_takes_any_executor() -> None:
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as executor:
        assert await off_loop(executor, pow, 2, 5) == 32
