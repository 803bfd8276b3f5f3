"""uvicorn's httptools protocol, minus two copies of every request body byte.

Stock uvicorn appends each parsed body piece to a `bytearray` (one copy) and hands
the app `bytes(that)` (a second): for a 1 GiB upload that is 2 GiB of memcpy on the
loop thread, which is the server's busiest. Here the pieces are kept as they come
and handed over as they are (joined only when the app fell behind by several). The
socket is also read 1 MiB at a time instead of asyncio's 256 KiB while a body streams in,
so each MiB costs one pass through the parser, the app's receive() and the multipart
parser, not four.

A read of that size is not free when little is waiting: CPython allocates the whole size
for each `recv` (above glibc's 128 KiB threshold that is an mmap, page faults, an mremap
and a munmap), about 30 us more than a 64 KiB read for a 20 KiB request. So the read
size adapts: SMALL_READ after a short read, READ_SIZE once a read fills it.

Measured on a 1 GiB upload over loopback: see docs/internals.md, "The embedded backend".

An answer leaves in one write: uvicorn writes the status line and headers as soon as the
app sends `http.response.start`, then the body as another write. With Nagle off that is
two segments, two `sendto` calls and (over loopback) two passes through the client's
receive path and wake-ups, for a JSON answer of a few hundred bytes. `_OneWriteCycle`
holds the head until the first body piece (or the end of the answer) and sends them
together.

The request head is capped here too (llhttp has no limit of its own, and uvicorn keeps
every header it is given): more than MAX_HEAD_BYTES of request line and headers, or more
than MAX_HEADERS fields, is answered 431 and the connection closed. Bytes are counted as
they arrive, before the parser copies them, so a flood costs one read at most. A client
that queues more than MAX_PIPELINED requests behind the running one is disconnected.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from synapse_tui.server.limits import (
    MAX_HEAD_BYTES,
    MAX_HEADERS,
    MAX_PIPELINED,
    HeadDeadline,
    head_too_large_response,
)

READ_SIZE = 1 << 20
SMALL_READ = 64 << 10  # below glibc's mmap threshold: served from the heap
# Stock uvicorn stops reading a connection whenever more than 64 KiB of body waits for
# the app, and starts again on the app's next receive(): with 256 KiB socket reads that
# is two epoll_ctl calls per read, a fifth of the loop's time while a chunk streams in.
# 1 MiB per connection keeps a read or four buffered instead. Our own limit, for our own
# protocol: uvicorn's module global stays as it is for any other server in the process.
BODY_HIGH_WATER = 1 << 20


class BodyPieces:
    """Stands in for uvicorn's per-request `bytearray`: `+=` keeps a reference, `len()`
    counts, `bytes()` joins (no copy for a single piece)."""

    __slots__ = ("parts", "size")

    def __init__(self, first: bytes | bytearray = b"") -> None:
        self.parts: list[bytes] = [bytes(first)] if first else []
        self.size = len(first)

    def __iadd__(self, data: bytes) -> BodyPieces:
        self.parts.append(data)
        self.size += len(data)
        return self

    def __len__(self) -> int:
        return self.size

    def __bytes__(self) -> bytes:
        if len(self.parts) == 1:
            return self.parts[0]
        return b"".join(self.parts)


class _HeadHeldTransport:
    """The cycle's side of the transport: while `hold` is set, writes are kept; the next
    write (or `flush`, or `close`) sends them ahead of its own bytes in one piece."""

    __slots__ = ("_transport", "held", "hold")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self.hold = False
        self.held: bytes | None = None

    def write(self, data: bytes) -> None:
        if self.held is not None:
            data, self.held = self.held + data, None
        if self.hold:
            self.held = data
        else:
            self._transport.write(data)

    def flush(self) -> None:
        if self.held is not None:
            data, self.held = self.held, None
            self._transport.write(data)

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def close(self) -> None:
        if not self._transport.is_closing():
            self.flush()
        self.held = None
        self._transport.close()


class _OneWriteCycle(RequestResponseCycle):
    """uvicorn's cycle, whose answer head waits for the first body piece (see above)."""

    transport: Any

    async def send(self, message: Any) -> None:
        transport: _HeadHeldTransport = self.transport
        if message["type"] == "http.response.start" and not self.response_started:
            transport.hold = True
            try:
                await super().send(message)
            finally:
                transport.hold = False
            return
        await super().send(message)
        # A body that wrote nothing (HEAD, an empty piece) must not keep the head back.
        if transport.held is not None and not self.disconnected and not transport.is_closing():
            transport.flush()


class _HeadTooLarge(Exception):
    """Raised from a parser callback to stop parsing (httptools turns it into its error)."""


class _PipelineTooDeep(Exception):
    """Raised when a client queues more than MAX_PIPELINED requests behind the running one."""


class LeanHttpToolsProtocol(HeadDeadline, HttpToolsProtocol):
    # Head accounting: `_in_head` from the end of a message (or the connection's start)
    # until the next head is complete; `_head_bytes` counts what arrived meanwhile (an
    # unfinished head). `_parsed` and `_header_count` measure what the parser made of the
    # current head (one finished within a single read).
    _in_head = True
    _head_bytes = 0
    _parsed = 0
    _header_count = 0
    _too_large = False
    _too_deep = False
    _refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_deadline()
        self._sized = isinstance(getattr(transport, "max_size", None), int)
        if self._sized:
            transport.max_size = SMALL_READ  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._sized:
            transport: Any = self.transport
            if len(data) >= transport.max_size:
                transport.max_size = READ_SIZE  # more is waiting: a body streams in
            elif len(data) < SMALL_READ:
                transport.max_size = SMALL_READ
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._in_head and self._head_bytes > MAX_HEAD_BYTES and not self._refused:
            self._refuse_head()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_deadline()
        super().connection_lost(exc)

    def _refuse_head(self) -> None:
        self._refused = True
        self.transport.write(head_too_large_response())
        self.transport.close()

    def send_400_response(self, msg: str) -> None:
        if self._too_large:  # the parser stopped on _HeadTooLarge
            self._refuse_head()
        elif self._too_deep:  # no answer can overtake the queued ones: just close
            self._refused = True
            self.transport.close()
        else:
            super().send_400_response(msg)

    def _count(self, size: int, fields: int) -> None:
        self._parsed += size
        self._header_count += fields
        if self._parsed > MAX_HEAD_BYTES or self._header_count > MAX_HEADERS:
            self._too_large = True
            raise _HeadTooLarge

    def on_message_begin(self) -> None:
        self._parsed = self._header_count = 0
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        self._count(len(url), 0)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4, 1)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_bytes = 0
        # uvicorn queues a pipelined request (a scope, an event, a cycle: ~8 KiB) for each
        # head in a read: 4 MiB of 30-byte GETs held ~250 MiB. No client we know pipelines.
        if len(self.pipeline) >= MAX_PIPELINED:
            self._too_deep = True
            raise _PipelineTooDeep
        before = self.cycle
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not before and type(cycle) is RequestResponseCycle:
            cycle.__class__ = _OneWriteCycle
            cycle.transport = _HeadHeldTransport(self.transport)  # type: ignore[assignment]

    def on_message_complete(self) -> None:
        self._in_head = True  # what arrives next is the next request's head
        self._head_bytes = 0
        super().on_message_complete()

    def on_body(self, body: bytes) -> None:
        cycle: Any = self.cycle
        if (self.parser.should_upgrade() and self._should_upgrade()) or cycle.response_complete:
            return
        pieces = cycle.body
        if not isinstance(pieces, BodyPieces):
            pieces = cycle.body = BodyPieces(pieces)
        pieces += body
        if len(pieces) > BODY_HIGH_WATER:
            self.flow.pause_reading()
        cycle.message_event.set()
