"""The head deadline keeps one timer per connection, moved by each answer, not one per answer."""

from __future__ import annotations

from typing import Any

import pytest

from synapse_tui.server import limits
from synapse_tui.server.limits import HeadDeadline


class _Loop:
    def __init__(self) -> None:
        self.now = 100.0
        self.timers: list[tuple[float, Any]] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Any) -> Any:
        self.timers.append((when, callback))
        return _Handle()

    def call_later(self, delay: float, callback: Any) -> Any:
        return self.call_at(self.now + delay, callback)


class _Handle:
    def cancel(self) -> None:
        pass


class _Transport:
    closed = False

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True


class _Cycle:
    response_complete = True


class _Connection(HeadDeadline):
    def __init__(self) -> None:
        self.loop: Any = _Loop()
        self.transport: Any = _Transport()
        self.cycle = _Cycle()


def _fire(conn: _Connection) -> None:
    when, callback = conn.loop.timers.pop(0)
    conn.loop.now = max(conn.loop.now, when)
    callback()


def test_answers_move_the_deadline_and_an_early_timer_waits_for_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(limits, "HEAD_TIMEOUT", 60.0)
    conn = _Connection()
    conn._arm_head_deadline()  # the connection opens at t=100
    for t in range(101, 131):  # thirty answers, one a second
        conn.loop.now = float(t)
        conn._arm_head_deadline()
    assert [when for when, _ in conn.loop.timers] == [160.0]  # one timer so far
    _fire(conn)  # at 160: the last answer was at 130, so the head has until 190
    assert not conn.transport.closed
    assert [when for when, _ in conn.loop.timers] == [190.0]
    _fire(conn)
    assert conn.transport.closed


def test_a_running_request_is_spared_when_the_deadline_passes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(limits, "HEAD_TIMEOUT", 60.0)
    conn = _Connection()
    conn._arm_head_deadline()
    conn.cycle.response_complete = False  # a request is running (its body streams in)
    _fire(conn)
    assert not conn.transport.closed and conn.loop.timers == []
    conn.cycle.response_complete = True  # answered: the deadline starts again
    conn._arm_head_deadline()
    assert [when for when, _ in conn.loop.timers] == [conn.loop.now + 60.0]
    _fire(conn)
    assert conn.transport.closed
