"""Before resuming, the server's answer is checked: an expired or other-sized upload is left."""

from __future__ import annotations

import email.utils
from pathlib import Path
from typing import Any

import httpx
import pytest

from synapse_tui.engine.answers import UploadInfo, server_time
from synapse_tui.engine.events import Event, LogMessage
from tests.engine.fakeserver import FakeServer
from tests.engine.test_uploader import CHUNK, done, make_file, manager, stored, upload

NOW = 1_790_000_000.0  # the server's clock, in its Date header


def paused_half_way(tmp_path: Path, server: FakeServer) -> None:
    """Chunk 1 lands, then the server fails until the retry budget is spent (paused)."""
    for nth in range(2, 10):
        server.before[("PUT", nth)] = lambda r: httpx.Response(500, json={})


async def resume_with(tmp_path: Path, server: FakeServer, extra: dict[str, Any]) -> list[Event]:
    """Resume the paused job while the server's state answers carry `extra`."""
    server.before.clear()
    apply = server.apply

    def answer(request: httpx.Request) -> httpx.Response:
        response = apply(request)
        if request.method != "GET" or response.status_code != 200:
            return response
        body = {**response.json(), **extra}
        date = email.utils.formatdate(NOW, usegmt=True)
        return httpx.Response(200, json=body, headers={"Date": date})

    server.apply = answer  # type: ignore[method-assign]
    events: list[Event] = []
    async with manager(server, tmp_path / "state", events) as m:
        assert m.resume_unfinished() == 1
        await m.wait_idle()
    return events


@pytest.mark.parametrize(
    ("extra", "why"),
    [
        ({"expires_at": "2026-09-21T00:00:00Z"}, "has expired"),  # before NOW by its clock
        ({"size": 5 * CHUNK}, "is of 327680 bytes"),
    ],
)
async def test_an_upload_that_cannot_go_on_is_left_before_a_byte_is_sent(
    tmp_path: Path, extra: dict[str, Any], why: str
) -> None:
    server = FakeServer()
    paused_half_way(tmp_path, server)
    src = make_file(tmp_path, "a.bin", 3 * CHUNK)
    await upload(server, tmp_path / "state", [src], retries=0)
    (old,) = server.uploads
    calls = len(server.calls)
    events = await resume_with(tmp_path, server, extra)
    later = server.calls[calls:]
    assert not [c for c in later if c[0] == "PUT" and old in c[1]], "a chunk went to the old one"
    warnings = [e.message for e in events if isinstance(e, LogMessage) and e.level == "warning"]
    assert len(warnings) == 1 and why in warnings[0] and "starting a new upload" in warnings[0]
    [ev] = done(events)
    assert ev.upload_id != old and ev.resumed_from == 0
    assert stored(server, ev) == src.read_bytes()


async def test_an_upload_that_has_not_expired_is_resumed(tmp_path: Path) -> None:
    server = FakeServer()
    paused_half_way(tmp_path, server)
    src = make_file(tmp_path, "a.bin", 3 * CHUNK)
    await upload(server, tmp_path / "state", [src], retries=0)
    (old,) = server.uploads
    # Expires an hour after the server's now, though long before this machine's clock may say.
    later = {"expires_at": "2026-09-21T16:13:20+01:00", "size": 3 * CHUNK}
    events = await resume_with(tmp_path, server, later)
    [ev] = done(events)
    assert ev.upload_id == old and ev.resumed_from == CHUNK
    assert stored(server, ev) == src.read_bytes()


def test_the_answer_reads_expiry_size_and_date() -> None:
    info = UploadInfo.parse(
        {"id": "u", "url": "http://h/u/", "offset": 0, "size": 7, "expires_at": "bad"}
    )
    assert info.size == 7 and info.expires_at is None and not info.expired()
    naive = UploadInfo.parse(
        {"id": "u", "url": "http://h/u/", "offset": 0, "expires_at": "2020-01-01T00:00:00"}
    )
    assert naive.expires_at is None  # no zone: which clock it means is unknown
    dated = httpx.Response(200, headers={"Date": "Sun, 06 Dec 2026 19:00:00 GMT"})
    assert server_time(dated) == 1796583600.0
    assert server_time(httpx.Response(200, headers={"Date": "soon"})) is None
    assert server_time(httpx.Response(200)) is None
