"""One client connection of the engine: a bounded outbox, progress coalesced latest-wins."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import struct
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

from synapse_tui.service.wire import WireError, encode

log = logging.getLogger("synapse_tui.service")
# Senders being cancelled: the loop keeps only weak references to tasks, and a cancelled
# sender of a forgotten peer must still get to run its cancellation.
_closing: set[asyncio.Task[None]] = set()


@dataclass
class PeerLimits:
    """What one client may cost the engine."""

    outbox_bytes: int = 4 << 20  # urgent lines waiting for a client: past this, dropped
    write_timeout: float = 20.0  # a batch not taken by the client within this: dropped
    gather: float = 0.02  # lines are gathered this long into one write


def peer_uid(sock: socket.socket) -> int:
    """The uid of the process at the other end of a Unix socket (SO_PEERCRED)."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


def same_user(writer: asyncio.StreamWriter) -> bool:
    sock = writer.get_extra_info("socket")
    if sock is None:
        return False
    try:
        return peer_uid(sock) == os.getuid()
    except OSError:
        return False


class Peer:
    """Lines for one client. Urgent lines (state changes, files done, replies) keep their
    order up to `outbox_bytes`; progress lines replace the one before them with the same
    key. A client that does not take a batch within `write_timeout`, or lets the urgent
    lines pile up past the limit, is dropped: the engine never waits for a client and
    never holds more than that for one."""

    def __init__(
        self,
        number: int,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        limits: PeerLimits,
    ) -> None:
        self.number = number
        self.reader = reader
        self.writer = writer
        self.limits = limits
        self.role = "control"
        self.subscribed = False
        self.batches: set[int] = set()
        self.scans: dict[int, Any] = {}  # this client's `scan` runs (service/queries.py)
        self.closed = asyncio.Event()
        self.dropped_reason: str | None = None
        self._urgent: deque[bytes] = deque()
        self._urgent_bytes = 0
        self._latest: dict[Hashable, bytes] = {}
        self._latest_bytes = 0
        self._wake = asyncio.Event()
        self._sender = asyncio.create_task(self._send_loop(), name=f"peer-{number}-send")

    @property
    def queued_bytes(self) -> int:
        return self._urgent_bytes + self._latest_bytes

    def send(self, obj: dict[str, Any], coalesce: Hashable | None = None) -> None:
        if self.closed.is_set():
            return
        try:
            line = encode(obj)
        except WireError:
            log.exception("an unsendable line for client %s", self.number)
            return
        if coalesce is not None:
            old = self._latest.get(coalesce)
            self._latest[coalesce] = line
            self._latest_bytes += len(line) - (len(old) if old is not None else 0)
        else:
            self._urgent.append(line)
            self._urgent_bytes += len(line)
        if self.queued_bytes > self.limits.outbox_bytes:
            self.drop("its outbox is full (it stopped reading)")
            return
        self._wake.set()

    async def _send_loop(self) -> None:
        try:
            while True:
                await self._wake.wait()
                await asyncio.sleep(self.limits.gather)
                self._wake.clear()
                # Progress first: a later "done" line must not be followed by older progress.
                lines = list(self._latest.values())
                lines.extend(self._urgent)
                self._latest.clear()
                self._urgent.clear()
                self._urgent_bytes = self._latest_bytes = 0
                self.writer.write(b"".join(lines))
                try:
                    await asyncio.wait_for(self.writer.drain(), self.limits.write_timeout)
                except TimeoutError:
                    self.drop("it stopped reading")
                    return
        except (ConnectionError, OSError):
            self.drop("the connection broke")
        except asyncio.CancelledError:
            pass

    def drop(self, reason: str) -> None:
        if self.closed.is_set():
            return
        self.dropped_reason = reason
        log.info("client %s (%s) dropped: %s", self.number, self.role, reason)
        self.close()

    def close(self) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        self._urgent.clear()
        self._latest.clear()
        self._urgent_bytes = self._latest_bytes = 0
        self._sender.cancel()
        _closing.add(self._sender)
        self._sender.add_done_callback(_closing.discard)
        transport = self.writer.transport
        with contextlib.suppress(Exception):
            transport.abort()

    async def flush_and_close(self, timeout: float = 2.0) -> None:
        """Send what is queued (best effort, bounded), then close."""
        if self.closed.is_set():
            return
        self._wake.set()
        deadline = asyncio.get_running_loop().time() + timeout
        while (self._urgent or self._latest or self._wake.is_set()) and not self._sender.done():
            if asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.01)
        left = max(0.0, deadline - asyncio.get_running_loop().time())
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.writer.drain(), left)
        self.close()
