"""The storage question goes out early (the engine asks it with its start-up ping, while the
first files are scanned), and the first file takes that answer instead of asking again."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from synapse_tui.engine.events import Event, LogMessage
from synapse_tui.engine.presigned import service
from tests.faults.helpers import make_manager

STORAGE = {
    "provider": "s3",
    "is_default": True,
    "category": "internal",
    "configuration": {"endpoint_url": "http://storage.test"},
}


class Backend:
    """Answers the storage list (failing the first `fail` times), and counts the asks."""

    def __init__(self, fail: int = 0) -> None:
        self.fail = fail
        self.asked = 0
        self.answered = asyncio.Event()

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path.endswith("/storages/"), request.url
        self.asked += 1
        if self.asked <= self.fail:
            return httpx.Response(503, json={"detail": "busy"})
        self.answered.set()
        return httpx.Response(200, json={"results": [STORAGE]})


def _said(events: list[Event]) -> list[str]:
    return [e.message for e in events if isinstance(e, LogMessage)]


async def test_the_early_answer_is_taken_and_said_when_a_file_needs_it(tmp_path: Path) -> None:
    backend = Backend()
    events: list[Event] = []
    m = make_manager(
        "http://api.test/api", "tok", tmp_path, events, transport=httpx.MockTransport(backend)
    )
    try:
        svc = service(m)
        svc.ask_early()
        svc.ask_early()  # once only
        await asyncio.wait_for(backend.answered.wait(), 10)
        await asyncio.sleep(0)  # the early task stores its answer
        assert svc.capable is None  # not decided until a file asks
        assert not _said(events)  # said in the first file's context, as before
        assert await svc.discover() is True
        assert backend.asked == 1
        assert any("straight to the s3 storage" in text for text in _said(events))
    finally:
        await m.client.aclose()
        m.journal.close()


async def test_a_failed_early_ask_is_asked_again_by_the_file(tmp_path: Path) -> None:
    backend = Backend(fail=1)
    events: list[Event] = []
    m = make_manager(
        "http://api.test/api", "tok", tmp_path, events, transport=httpx.MockTransport(backend)
    )
    try:
        svc = service(m)
        svc.ask_early()
        assert await svc.discover() is True
        assert backend.asked == 2
    finally:
        await m.client.aclose()
        m.journal.close()


async def test_no_early_ask_with_the_chunked_strategy(tmp_path: Path) -> None:
    backend = Backend()
    m = make_manager(
        "http://api.test/api",
        "tok",
        tmp_path,
        [],
        transport=httpx.MockTransport(backend),
        strategy="chunked",
    )
    try:
        service(m).ask_early()
        await asyncio.sleep(0.05)
        assert backend.asked == 0
    finally:
        await m.client.aclose()
        m.journal.close()
