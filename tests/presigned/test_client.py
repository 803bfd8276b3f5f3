"""synapse-tui's presigned path end to end: the engine, the embedded backend, moto (S3)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from synapse_tui.engine import presigned
from synapse_tui.engine.events import Event, FatalStop, JobState
from synapse_tui.engine.scheduler import UploadManager
from tests.faults.helpers import Outcome, make_file, make_manager, run_engine
from tests.harness.embedded import EmbeddedServer
from tests.harness.moto import MotoServer
from tests.presigned.conftest import PART, THRESHOLD


def stored_keys(server: EmbeddedServer) -> dict[str, tuple[str, int]]:
    """file_key -> (SHA1, size) of every confirmed presigned file on the server."""
    rows = server.backend.store._conn().execute(
        "SELECT file_key, checksum, size FROM presigned_files WHERE data_file IS NOT NULL"
    )
    return {key: (sha1, size) for key, sha1, size in rows}


def count_requests(manager: UploadManager, paths: dict[str, list[int]]) -> None:
    """The files of each API request, per path (instrumentation only: the call goes on)."""
    original = manager.client.post_json

    async def counting(path: str, body: Any, timeout: Any = None) -> Any:
        paths.setdefault(path, []).append(len(body["files"]))
        return await original(path, body, timeout)

    manager.client.post_json = counting  # type: ignore[method-assign]


async def test_small_files_go_in_batches_and_land_intact(
    s3_server: EmbeddedServer, moto: MotoServer, tmp_path: Path
) -> None:
    folder = tmp_path / "many"
    folder.mkdir()
    files = [make_file(folder / f"f{i:03}.bin", 1000 + i * 7, seed=i) for i in range(450)]
    requests: dict[str, list[int]] = {}
    events: list[Event] = []
    manager = make_manager(
        s3_server.url, s3_server.token, tmp_path / "state", events, concurrency=8
    )
    count_requests(manager, requests)
    try:
        async with manager as m:
            m.drain()  # queue all 450 first: then the batches are as full as they can be
            await m.add_paths([os.fsencode(folder)])
            m.undrain()
            await m.wait_idle()
    finally:
        manager.journal.close()
    outcome = Outcome(events, tmp_path / "state", 0.0, manager)
    assert len(outcome.done) == 450 and not outcome.failed
    stored = stored_keys(s3_server)
    assert len(stored) == 450
    by_sha1 = {hashlib.sha1(f.read_bytes()).hexdigest() for f in files}
    assert {sha1 for sha1, _ in stored.values()} == by_sha1
    some_key = next(iter(stored))
    assert hashlib.sha1(moto.object_bytes(some_key)).hexdigest() == stored[some_key][0]
    # One URL request per up to 200 files: the 8 jobs that start together and the next
    # 192 queued, 200 more, the last 50 (a request retried after a timeout counts twice).
    # Confirms batched: far fewer requests than files.
    asked = requests["data_files/presigned_upload/upload/"]
    # Up to 200 files a request, and few requests (how full each is depends on how many
    # files are in flight when one goes: 16 small files per 4 slots at the defaults).
    assert asked[0] == 200 and max(asked) <= 200, asked
    # Seen under load: [200, 57, 130, 64, 1]. One file a request would be 450 requests.
    assert sum(asked) >= 450 and len(asked) <= 8, asked
    confirmed = requests["data_files/presigned_upload/confirm_upload/"]
    assert max(confirmed) >= 8 and len(confirmed) <= 450 // 4, confirmed
    # Nothing went through the chunked path, and no URL stays in the journal.
    assert s3_server.backend.store.list_for(1) == []
    journal = (tmp_path / "state" / "journal.sqlite3").read_bytes()
    assert b"X-Amz-Signature" not in journal


async def test_a_large_file_goes_in_parallel_parts(
    s3_server: EmbeddedServer, moto: MotoServer, tmp_path: Path
) -> None:
    big = make_file(tmp_path / "big.bin", 3 * PART + 12345, seed=7)
    in_flight = {"now": 0, "max": 0}

    async def during(m: UploadManager) -> None:
        storage = presigned.service(m).storage
        original = storage.put

        async def counting(
            url: str, body: AsyncIterator[bytes] | bytes, length: int, md5: str
        ) -> str:
            in_flight["now"] += 1
            in_flight["max"] = max(in_flight["max"], in_flight["now"])
            try:
                return await original(url, body, length, md5)
            finally:
                in_flight["now"] -= 1

        storage.put = counting  # type: ignore[method-assign]

    outcome = await run_engine(
        s3_server.url, s3_server.token, [big], tmp_path / "state", during=during, concurrency=4
    )
    assert len(outcome.done) == 1, outcome.logs()
    ((key, (sha1, size)),) = stored_keys(s3_server).items()
    assert size == big.stat().st_size
    assert sha1 == hashlib.sha1(big.read_bytes()).hexdigest()
    assert moto.object_bytes(key) == big.read_bytes()
    assert in_flight["max"] >= 2  # parts went in parallel
    assert in_flight["max"] <= 4  # within the concurrency gate


async def test_chunked_strategy_and_a_backend_without_storage_use_the_chunked_path(
    s3_server: EmbeddedServer, embedded_server: EmbeddedServer, tmp_path: Path
) -> None:
    one = make_file(tmp_path / "one.bin", 5000, seed=1)
    outcome = await run_engine(
        s3_server.url, s3_server.token, [one], tmp_path / "s1", strategy="chunked"
    )
    assert len(outcome.done) == 1
    assert stored_keys(s3_server) == {}
    assert len(s3_server.backend.store.list_for(1)) == 1
    outcome = await run_engine(embedded_server.url, embedded_server.token, [one], tmp_path / "s2")
    assert len(outcome.done) == 1
    assert len(embedded_server.backend.store.list_for(1)) == 1


async def test_presigned_strategy_without_storage_stops_with_one_clear_error(
    embedded_server: EmbeddedServer, tmp_path: Path
) -> None:
    one = make_file(tmp_path / "one.bin", 10, seed=1)
    outcome = await run_engine(
        embedded_server.url, embedded_server.token, [one], tmp_path / "s", strategy="presigned"
    )
    (fatal,) = outcome.of(FatalStop)
    assert "--strategy presigned" in fatal.error and "file_system" in fatal.error
    assert embedded_server.backend.store.list_for(1) == []
    assert outcome.states() == [JobState.PAUSED]


async def test_a_file_at_the_threshold_goes_in_one_put_above_it_in_parts(
    s3_server: EmbeddedServer, moto: MotoServer, tmp_path: Path
) -> None:
    at = make_file(tmp_path / "at.bin", THRESHOLD, seed=3)
    above = make_file(tmp_path / "above.bin", THRESHOLD + 1, seed=4)
    outcome = await run_engine(s3_server.url, s3_server.token, [at, above], tmp_path / "s")
    assert len(outcome.done) == 2, outcome.logs()
    rows = dict(
        s3_server.backend.store._conn().execute(
            "SELECT size, upload_id IS NOT NULL FROM presigned_files"
        )
    )
    assert rows == {THRESHOLD: 0, THRESHOLD + 1: 1}
    landed = sorted(moto.object_bytes(key) for key in stored_keys(s3_server))
    assert landed == sorted([at.read_bytes(), above.read_bytes()])
