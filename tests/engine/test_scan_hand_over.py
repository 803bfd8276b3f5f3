"""The walker thread hands its batches to the scan's loop (`scan.hand_over`): when that
loop has closed or stopped (an engine shut down mid-scan), the walker stops, with no
coroutine left unawaited (a RuntimeWarning at exit) and no thread waiting forever."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
import warnings
from collections.abc import Iterator

import pytest

from synapse_tui.engine.scan import hand_over


@pytest.fixture
def running_loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield loop
    if loop.is_running():
        loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    if not loop.is_closed():  # as asyncio.run ends: what is left is cancelled, then closed
        left = asyncio.all_tasks(loop)
        for task in left:
            task.cancel()

        async def cancelled() -> None:
            await asyncio.gather(*left, return_exceptions=True)

        loop.run_until_complete(cancelled())
        loop.close()


def _unawaited(caught: list[warnings.WarningMessage]) -> list[str]:
    gc.collect()
    return [str(w.message) for w in caught if "never awaited" in str(w.message)]


def test_a_closed_loop_is_refused_without_an_unawaited_coroutine() -> None:
    loop = asyncio.new_event_loop()
    queue: asyncio.Queue[int] = asyncio.Queue()
    loop.close()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert hand_over(loop, queue, 1) is False
        assert _unawaited(caught) == []


def test_an_item_reaches_a_running_loop(running_loop: asyncio.AbstractEventLoop) -> None:
    queue: asyncio.Queue[int] = asyncio.Queue(maxsize=1)
    assert hand_over(running_loop, queue, 7) is True
    got = asyncio.run_coroutine_threadsafe(queue.get(), running_loop).result(5)
    assert got == 7


def test_a_loop_stopped_while_the_queue_is_full_lets_the_walker_go(
    running_loop: asyncio.AbstractEventLoop,
) -> None:
    queue: asyncio.Queue[int] = asyncio.Queue(maxsize=1)
    assert hand_over(running_loop, queue, 1) is True  # full now: the next one waits
    result: list[bool] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        walker = threading.Thread(target=lambda: result.append(hand_over(running_loop, queue, 2)))
        walker.start()
        deadline = time.monotonic() + 5
        while not running_loop.is_running() or queue.qsize() < 1:
            assert time.monotonic() < deadline
        running_loop.call_soon_threadsafe(running_loop.stop)
        walker.join(10)
        assert not walker.is_alive()  # it waited for the loop, then gave up
        assert result == [False]
        assert _unawaited(caught) == []
    assert queue.qsize() == 1
