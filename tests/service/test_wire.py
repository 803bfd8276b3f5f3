"""The wire protocol's types, and a client's outbox: bounded, progress coalesced."""

from __future__ import annotations

import asyncio
import json
import os
import socket
from typing import Any

import pytest

from synapse_tui.engine.events import (
    BackendState,
    Event,
    FatalStop,
    JobDone,
    JobFailed,
    JobProgress,
    JobQueued,
    JobRetrying,
    JobSkipped,
    JobState,
    JobStateChanged,
    LogMessage,
    ScanProgress,
    TotalProgress,
    UnitRegistered,
)
from synapse_tui.headless import JsonReporter
from synapse_tui.service.peer import Peer, PeerLimits
from synapse_tui.service.wire import (
    MAX_LINE,
    Add,
    Control,
    WireError,
    command_from_wire,
    decode,
    encode,
    event_from_wire,
    event_to_wire,
)

EVENTS: list[Event] = [
    JobQueued(1, "a", 3, True),
    JobStateChanged(1, JobState.UPLOADING, "x"),
    JobProgress(1, 2, 3, 1.5, None),
    JobDone(1, "a", 3, "0" * 32, "u1", 0),
    JobSkipped(None, "b", "duplicate of a"),
    JobFailed(2, "c", "boom", True),
    LogMessage("warning", "careful", 1),
    TotalProgress(1, 2, 3, 4, 5.0, 6.0, 5.0, 7.0, {"done": 1}),
    ScanProgress(1, 2, 3, 4, 5, True),
    FatalStop("401"),
    UnitRegistered(7, 3, ["a", "b"]),
    JobRetrying(1, 3, 12, 40.0, "connection refused"),
    BackendState(False, 1790000000.0, "connection refused"),
    BackendState(True, None),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_every_engine_event_survives_the_wire(event: Event) -> None:
    line = encode(event_to_wire(event))
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert event_from_wire(decode(line)) == event


def test_events_carry_the_keys_and_names_of_json_output() -> None:
    printed: list[dict[str, Any]] = []
    reporter = JsonReporter.__new__(JsonReporter)

    def emit(obj: dict[str, Any]) -> None:
        printed.append(obj)

    reporter.emit = emit  # type: ignore[method-assign]  # what it prints, kept instead
    reporter.verbose = True
    for event in EVENTS:
        if isinstance(event, JobFailed | FatalStop):
            continue  # these also write an error line (stderr), not what is compared
        printed.clear()
        reporter.show(event)
        wire = event_to_wire(event)
        for obj in printed:
            assert obj["event"] == wire["event"]
            assert set(obj) - {"counts"} <= set(wire), (obj, wire)


def test_file_names_that_are_not_utf8_survive() -> None:
    name = os.fsdecode(b"/data/caf\xe9\n.bin")
    _, command = command_from_wire(decode(encode(Add(paths=[name]).to_wire(1))))
    assert isinstance(command, Add)
    assert os.fsencode(command.paths[0]) == b"/data/caf\xe9\n.bin"


@pytest.mark.parametrize(
    "obj",
    [
        {"cmd": "nope", "id": 1},
        {"cmd": "add", "id": "1"},
        {"cmd": "add", "id": 1, "paths": "/etc"},
        {"cmd": "add", "id": 1, "paths": [1]},
        {"cmd": "control", "id": 1, "job": "3"},
        {"cmd": "control", "id": 1, "job": True},
        {"cmd": "set", "id": 1, "bwlimit": "fast"},
    ],
)
def test_bad_commands_are_refused(obj: dict[str, object]) -> None:
    with pytest.raises(WireError):
        command_from_wire(obj)


def test_unknown_fields_are_ignored_and_types_kept() -> None:
    request_id, command = command_from_wire(
        {"cmd": "control", "id": 4, "action": "pause", "job": 3, "from_the_future": 1}
    )
    assert request_id == 4 and command == Control("pause", 3)
    _, s = command_from_wire({"cmd": "set", "id": 5, "bwlimit": 1024})
    assert s.bwlimit == 1024  # type: ignore[attr-defined]


def test_lines_have_a_limit_both_ways() -> None:
    with pytest.raises(WireError):
        encode({"x": "y" * MAX_LINE})
    with pytest.raises(WireError):
        decode(b"[" * 10 + b"]" * 10)
    with pytest.raises(WireError):
        decode(json.dumps({"x": "y" * MAX_LINE}).encode())


async def _stuck_peer(limits: PeerLimits) -> tuple[Peer, socket.socket]:
    ours, theirs = socket.socketpair()
    theirs.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    reader, writer = await asyncio.open_connection(sock=ours)
    return Peer(1, reader, writer, limits), theirs


async def test_progress_is_coalesced_latest_wins() -> None:
    peer, theirs = await _stuck_peer(PeerLimits(gather=0.05))
    try:
        for sent in range(10_000):
            peer.send(event_to_wire(JobProgress(1, sent, 10_000, 1.0, None)), ("job", 1))
        assert peer.queued_bytes < 200  # one line, not ten thousand
        await asyncio.sleep(0.2)
        got = decode(theirs.recv(4096).splitlines()[0])
        assert got["sent"] == 9_999
    finally:
        peer.close()
        theirs.close()


async def test_a_client_that_stops_reading_costs_at_most_its_outbox() -> None:
    limit = 256 * 1024
    peer, theirs = await _stuck_peer(PeerLimits(outbox_bytes=limit, write_timeout=30, gather=0))
    try:
        line = event_to_wire(LogMessage("info", "x" * 200))
        most = 0
        for _ in range(50_000):  # ~12 MB if nothing were dropped
            peer.send(line)
            most = max(most, peer.queued_bytes)
            if peer.closed.is_set():
                break
            await asyncio.sleep(0)
        assert peer.closed.is_set() and peer.dropped_reason is not None
        assert most <= limit + 300
        assert peer.queued_bytes == 0
    finally:
        theirs.close()


async def test_a_client_that_does_not_take_a_batch_in_time_is_dropped() -> None:
    peer, theirs = await _stuck_peer(PeerLimits(write_timeout=0.3, gather=0))
    try:
        big = event_to_wire(LogMessage("info", "x" * 100_000))
        for _ in range(20):  # ~2 MB: past what the socket buffers take
            peer.send(big)
        await asyncio.wait_for(peer.closed.wait(), 5)
        assert peer.dropped_reason == "it stopped reading"
    finally:
        theirs.close()


def test_every_engine_event_has_a_wire_name() -> None:
    """An event the engine emits without a wire name would raise in the service's listener
    and never reach a client: every Event subclass must be named (and names unique)."""
    import synapse_tui.engine.events as events_module
    from synapse_tui.engine.events import Event
    from synapse_tui.service.wire import EVENT_KINDS

    kinds = {
        obj
        for obj in vars(events_module).values()
        if isinstance(obj, type) and issubclass(obj, Event) and obj is not Event
    }
    assert kinds - set(EVENT_KINDS) == set()
    assert len(set(EVENT_KINDS.values())) == len(EVENT_KINDS)
