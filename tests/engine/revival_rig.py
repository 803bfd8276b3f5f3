"""Shared set-up of the tests of a cancelled job queued again: an engine on the embedded
backend, chunked uploads slow enough to cancel one mid-way, and a file of 2 MiB."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from synapse_tui.engine.events import Event
from synapse_tui.engine.job import Job
from synapse_tui.engine.journal import Journal
from synapse_tui.engine.protocol import Credentials, ProtocolClient
from synapse_tui.engine.scheduler import EngineOptions, UploadManager
from tests.engine.test_cancel_replan import cancelled_mid_upload
from tests.harness.embedded import EmbeddedServer


@dataclass
class Cancelled:
    m: UploadManager
    job: Job
    path: Path
    events: list[Event]
    state: Path


def big_file(tmp_path: Path, name: str = "a.bin") -> Path:
    path = tmp_path / name
    path.write_bytes(os.urandom(2 << 20))
    return path


def manager(
    server: EmbeddedServer, tmp_path: Path, *, slow: bool = True
) -> tuple[UploadManager, list[Event], Path]:
    """An engine (to enter with `async with`), the events it emits and its state folder;
    `slow`: 256 KiB/s, so an upload can be cancelled mid-way."""
    options = EngineOptions(
        host=server.url, chunk_size=64 << 10, tick=0.05, backoff_base=0.01, strategy="chunked"
    )
    if slow:
        options.bwlimit = 256 << 10
    events: list[Event] = []
    state = tmp_path / "state"
    client = ProtocolClient(server.url, Credentials(access_token=server.token))
    return UploadManager(client, Journal(state), options, [events.append]), events, state


@asynccontextmanager
async def cancelled(server: EmbeddedServer, tmp_path: Path) -> AsyncIterator[Cancelled]:
    """An engine (`manager`, slow) whose upload of a 2 MiB file was cancelled mid-way, its
    journal writes committed."""
    path = big_file(tmp_path)
    engine, events, state = manager(server, tmp_path)
    async with engine as m:
        job = await cancelled_mid_upload(m, path)
        await m.journal.settled()
        yield Cancelled(m, job, path, events, state)
