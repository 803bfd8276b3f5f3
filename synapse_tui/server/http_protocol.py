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
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

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


class LeanHttpToolsProtocol(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._sized = isinstance(getattr(transport, "max_size", None), int)
        if self._sized:
            transport.max_size = SMALL_READ  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        if self._sized:
            transport: Any = self.transport
            if len(data) >= transport.max_size:
                transport.max_size = READ_SIZE  # more is waiting: a body streams in
            elif len(data) < SMALL_READ:
                transport.max_size = SMALL_READ
        super().data_received(data)

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
