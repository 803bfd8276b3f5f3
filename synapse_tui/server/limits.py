"""What one client may make the backend hold: request head size, header count, body idle time."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.types import Message, Receive

from synapse_tui.server.errors import ApiError

# The request line and headers together. Our client and the SDK send well under 2 KiB;
# gunicorn allows 100 fields of 8 KiB, nginx 32 KiB of large headers by default.
MAX_HEAD_BYTES = 64 << 10
MAX_HEADERS = 100
MAX_PIPELINED = 16  # requests waiting behind the running one on a connection (httptools)
HEAD_TIMEOUT = 60.0  # seconds from a connection's start (or its last answer) to a whole head

HEAD_TOO_LARGE = "Request header fields too large"
BODY_TIMED_OUT = "Request body timed out"


def head_too_large_response() -> bytes:
    """The whole 431 answer, written before the connection is closed."""
    body = HEAD_TOO_LARGE.encode()
    return (
        b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
        b"content-type: text/plain; charset=utf-8\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n"
        b"connection: close\r\n\r\n" + body
    )


def idle_limited(receive: Receive, timeout: float) -> Receive:
    """`receive`, but waiting at most `timeout` seconds for each piece of the request body.

    A stalled body otherwise holds its upload's writer lock and its writer threads for
    as long as the client keeps the socket open. Once the body is complete (or the client
    left), calls pass through unbounded: Starlette waits on them for a disconnect while a
    response streams. The 408 closes the connection: the rest of that body is not read.
    """
    body_done = False

    async def limited() -> Message:
        nonlocal body_done
        if body_done:
            return await receive()
        try:
            async with asyncio.timeout(timeout):  # a timer, not a task per call as wait_for
                message = await receive()
        except TimeoutError:
            raise ApiError(408, BODY_TIMED_OUT, {"Connection": "close"}) from None
        if message["type"] != "http.request" or not message.get("more_body", False):
            body_done = True
        return message

    return limited


class HeadDeadline:
    """Mixed into both HTTP protocols: a connection that has no request running (just
    opened, or answered) is closed when HEAD_TIMEOUT passes without a whole new head.

    uvicorn arms its keep-alive timer only after an answer and cancels it on the first
    byte, so a connection that sends nothing, or a head one byte at a time, stayed open
    (and kept its socket) for ever. A running request is left alone: its body has
    `idle_limited`, and the next answer re-arms the deadline.
    """

    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    cycle: Any
    _head_timer: asyncio.TimerHandle | None = None
    _head_due = 0.0

    def _arm_head_deadline(self) -> None:
        # Called after every answer: it only moves the due time. The timer, when it fires
        # early, waits again for what is left (one timer per connection and minute, not a
        # cancelled timer and a new one per request: ~3% of the loop with small files).
        self._head_due = self.loop.time() + HEAD_TIMEOUT
        if self._head_timer is None:
            self._head_timer = self.loop.call_at(self._head_due, self._head_deadline)

    def _disarm_head_deadline(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_deadline(self) -> None:
        self._head_timer = None
        if self.loop.time() < self._head_due:  # re-armed since: wait for the rest
            self._head_timer = self.loop.call_at(self._head_due, self._head_deadline)
            return
        idle = self.cycle is None or self.cycle.response_complete
        if idle and not getattr(self, "pipeline", None) and not self.transport.is_closing():
            self.transport.close()
