"""The backend's worker threads: an Executor whose `call` answers the event loop directly.

`loop.run_in_executor` on a ThreadPoolExecutor costs, per call, a concurrent future (a
Condition), the executor's lock and idle-thread semaphore, and the chaining of that
future to an asyncio one (callbacks both ways, the state copied across). A small upload
makes one or two such calls; py-spy put them at ~8% of the loop thread's samples, and
the worker's side of the chain at as much again with the GIL held. `call` queues the
function with an asyncio future, and the worker answers it with one thread-safe call.
`submit` is the standard Executor method for everything else (same threads, same queue).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

# (asyncio future or concurrent future, function, arguments); None stops a worker.
_Item = tuple[Any, Callable[..., Any], tuple[Any, ...]]


class LeanPool(concurrent.futures.Executor):
    """`workers` threads started on first use, taking work from one queue in order."""

    def __init__(self, workers: int, name: str) -> None:
        self._workers = workers
        self._name = name
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._shutdown = False

    def call(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Run `fn(*args)` in a worker; the returned future (of the running loop) gets its
        result. Cancelling it before a worker takes it skips the call; after, the call
        runs to its end and its result is dropped (as `run_in_executor`)."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._put((future, fn, args))
        return future

    def submit(
        self, fn: Callable[..., T], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[T]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        if kwargs:
            self._put((future, lambda: fn(*args, **kwargs), ()))
        else:
            self._put((future, fn, args))
        return future

    def _put(self, item: _Item) -> None:
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            if not self._threads:
                for i in range(self._workers):
                    thread = threading.Thread(
                        target=self._work, name=f"{self._name}_{i}", daemon=True
                    )
                    thread.start()
                    self._threads.append(thread)
            self._queue.put(item)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            if self._shutdown:
                threads: list[threading.Thread] = []
            else:
                self._shutdown = True
                threads = list(self._threads)
            if cancel_futures:
                while True:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is not None:
                        _cancel(item[0])
            for _ in threads:
                self._queue.put(None)
        if wait:
            for thread in threads:
                thread.join()

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            _run(item)
            item = None  # hold nothing while waiting for the next


def _run(item: _Item) -> None:
    future, fn, args = item
    if isinstance(future, concurrent.futures.Future):
        if future.set_running_or_notify_cancel():
            try:
                result = fn(*args)
            except BaseException as exc:
                future.set_exception(exc)
            else:
                future.set_result(result)
        return
    if future.cancelled():  # a read only: the loop may still cancel it meanwhile
        return
    try:
        result = fn(*args)
    except BaseException as exc:
        _answer(future, False, exc)
    else:
        _answer(future, True, result)


async def off_loop(executor: concurrent.futures.Executor, fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` in the executor's threads: the lean way when it is a LeanPool."""
    if isinstance(executor, LeanPool):
        return await executor.call(fn, *args)
    return await asyncio.get_running_loop().run_in_executor(executor, fn, *args)


def _answer(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    with contextlib.suppress(RuntimeError):  # its loop is closed: nobody is left to answer
        future.get_loop().call_soon_threadsafe(_settle, future, ok, value)


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.done():  # cancelled meanwhile
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


def _cancel(future: Any) -> None:
    if isinstance(future, concurrent.futures.Future):
        future.cancel()
    else:
        with contextlib.suppress(RuntimeError):
            future.get_loop().call_soon_threadsafe(future.cancel)
