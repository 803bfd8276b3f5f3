"""The fault catalogue of the presigned path: each chunked-path fault's counterpart.

A fault proxy sits in front of moto (the storage) or in front of the embedded backend
(the API); the backend hands out URLs that point at the storage proxy.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from synapse_tui.engine.events import JobState
from tests.faults.helpers import Outcome, TimedProxy, make_file, run_engine
from tests.harness.embedded import EmbeddedServer
from tests.harness.moto import MotoServer
from tests.harness.proxy import Fault, FaultProxy, Rule
from tests.presigned.conftest import PART, s3_backend

SLOW_DOWN = (
    b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
)
EXPIRED = b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>"
BAD_DIGEST = b"<Error><Code>BadDigest</Code><Message>Content-MD5 did not match</Message></Error>"


@contextlib.asynccontextmanager
async def stack(moto: MotoServer, root: Path) -> AsyncIterator[tuple[FaultProxy, EmbeddedServer]]:
    """A fault proxy in front of moto, and the backend whose URLs point at the proxy."""
    port = urlsplit(moto.endpoint).port
    assert port is not None
    async with TimedProxy("127.0.0.1", port) as storage:
        # Started in a thread: the backend reaches the bucket through the proxy, which
        # runs on this loop.
        backend = s3_backend(moto, root, storage.url)
        server = await asyncio.to_thread(backend.__enter__)
        try:
            yield storage, server
        finally:
            await asyncio.to_thread(backend.__exit__, None, None, None)


def stored(server: EmbeddedServer) -> list[tuple[str, str]]:
    rows = server.backend.store._conn().execute(
        "SELECT file_key, checksum FROM presigned_files WHERE data_file IS NOT NULL"
    )
    return list(rows)


def data_files(server: EmbeddedServer) -> int:
    return int(
        server.backend.store._conn().execute("SELECT COUNT(*) FROM data_files").fetchone()[0]
    )


def puts(proxy: FaultProxy) -> list[Any]:
    """The client's PUTs (the backend's own calls to the storage are HEAD, GET and POST)."""
    return [r for r in proxy.requests if r.method == "PUT"]


def assert_intact(moto: MotoServer, server: EmbeddedServer, *files: Path) -> None:
    landed = sorted(moto.object_bytes(key) for key, _ in stored(server))
    assert landed == sorted(f.read_bytes() for f in files)
    assert data_files(server) == len(files)  # one data file each, never two


async def upload(server: EmbeddedServer, files: list[Path], state: Path, **options: Any) -> Outcome:
    return await run_engine(server.url, server.token, files, state, **options)


async def test_cut_put_is_sent_again(moto: MotoServer, tmp_path: Path) -> None:
    f = make_file(tmp_path / "f.bin", 300_000, seed=1)
    async with stack(moto, tmp_path / "root") as (storage, server):
        storage.add_rule(Rule(Fault("cut_body", after_bytes=50_000), method="PUT", times=1))
        outcome = await upload(server, [f], tmp_path / "s")
        assert len(outcome.done) == 1, outcome.logs()
        assert len(puts(storage)) == 2
        assert any("interrupted" in line for line in outcome.logs("warning"))
        assert_intact(moto, server, f)


async def test_lost_put_answer_is_sent_again_and_stored_once(
    moto: MotoServer, tmp_path: Path
) -> None:
    f = make_file(tmp_path / "f.bin", 20_000, seed=2)
    async with stack(moto, tmp_path / "root") as (storage, server):
        storage.add_rule(Rule(Fault("drop_response"), method="PUT", times=1))
        outcome = await upload(server, [f], tmp_path / "s")
        assert len(outcome.done) == 1, outcome.logs()
        assert len(puts(storage)) == 2
        assert_intact(moto, server, f)


async def test_slow_down_and_5xx_from_the_storage_back_off_and_retry(
    moto: MotoServer, tmp_path: Path
) -> None:
    big = make_file(tmp_path / "big.bin", 2 * PART + 10, seed=3)
    small = make_file(tmp_path / "small.bin", 5000, seed=4)
    async with stack(moto, tmp_path / "root") as (storage, server):
        storage.add_rule(
            Rule(
                Fault("status", status=503, body=SLOW_DOWN, retry_after="0"), method="PUT", times=2
            )
        )
        storage.add_rule(Rule(Fault("status", status=500), method="PUT", times=1))
        outcome = await upload(server, [big, small], tmp_path / "s")
        assert len(outcome.done) == 2, outcome.logs()
        warnings = outcome.logs("warning")
        assert sum("503 SlowDown" in w for w in warnings) == 2
        assert sum("answered 500" in w for w in warnings) == 1
        assert_intact(moto, server, big, small)


async def test_expired_url_is_renewed_and_the_parts_kept(moto: MotoServer, tmp_path: Path) -> None:
    big = make_file(tmp_path / "big.bin", 2 * PART + 10, seed=5)
    async with stack(moto, tmp_path / "root") as (storage, server):
        storage.add_rule(
            Rule(Fault("status", status=403, body=EXPIRED), method="PUT", nth=2, times=1)
        )
        outcome = await upload(server, [big], tmp_path / "s", concurrency=1)
        assert len(outcome.done) == 1, outcome.logs()
        assert any("fresh storage URLs" in line for line in outcome.logs())
        assert len(puts(storage)) == 4  # three parts, one of them twice
        assert_intact(moto, server, big)


async def test_bad_digest_from_the_storage_is_sent_again(moto: MotoServer, tmp_path: Path) -> None:
    f = make_file(tmp_path / "f.bin", 3000, seed=6)
    async with stack(moto, tmp_path / "root") as (storage, server):
        storage.add_rule(Rule(Fault("status", status=400, body=BAD_DIGEST), method="PUT", times=1))
        outcome = await upload(server, [f], tmp_path / "s")
        assert len(outcome.done) == 1, outcome.logs()
        assert any("BadDigest" in line for line in outcome.logs("warning"))
        assert_intact(moto, server, f)
        # Content-MD5 went with every PUT.
        digest = hashlib.md5(f.read_bytes()).digest()
        assert {r.headers.get("content-md5") for r in puts(storage)} == {
            base64.b64encode(digest).decode()
        }


async def test_lost_confirm_answer_makes_no_second_data_file(
    moto: MotoServer, tmp_path: Path
) -> None:
    files = [make_file(tmp_path / f"f{i}.bin", 2000 + i, seed=i) for i in range(5)]
    async with stack(moto, tmp_path / "root") as (_storage, server):
        port = urlsplit(server.url).port
        assert port is not None
        async with TimedProxy("127.0.0.1", port) as api:
            api.add_rule(
                Rule(Fault("drop_response"), method="POST", path_contains="confirm_upload", times=1)
            )
            host = api.url + "/api"
            outcome = await run_engine(host, server.token, files, tmp_path / "s")
            assert len(outcome.done) == 5, outcome.logs()
            confirms = [r for r in api.requests if "confirm_upload" in r.path]
            assert len(confirms) >= 2
        assert_intact(moto, server, *files)


async def test_checksum_mismatch_at_confirm_starts_the_file_again(
    moto: MotoServer, tmp_path: Path
) -> None:
    f = make_file(tmp_path / "f.bin", 4000, seed=8)
    async with stack(moto, tmp_path / "root") as (_storage, server):
        port = urlsplit(server.url).port
        assert port is not None
        async with TimedProxy("127.0.0.1", port) as api:
            tampered: list[str] = []

            def tamper(method: str, path: str) -> None:
                # Before the first confirm reaches the backend, the object changes in the
                # storage (what a broken storage or a foreign writer would do).
                if "confirm_upload" in path and not tampered:
                    client = moto.client()
                    for obj in client.list_objects_v2(Bucket=moto.bucket).get("Contents", []):
                        body = b"x" * obj["Size"]  # same size, other bytes
                        client.put_object(Bucket=moto.bucket, Key=obj["Key"], Body=body)
                        tampered.append(obj["Key"])

            api.hooks.append(tamper)
            outcome = await run_engine(api.url + "/api", server.token, [f], tmp_path / "s")
        assert tampered
        assert len(outcome.done) == 1, outcome.logs()
        assert any("checksum mismatch" in w and "again" in w for w in outcome.logs("warning"))
        assert_intact(moto, server, f)
        assert tampered[0] not in [key for key, _ in stored(server)]


async def test_the_storage_never_sees_the_token_and_logs_never_show_urls(
    moto: MotoServer, tmp_path: Path
) -> None:
    f = make_file(tmp_path / "f.bin", 2 * PART, seed=9)
    async with stack(moto, tmp_path / "root") as (storage, server):
        storage.add_rule(Rule(Fault("status", status=503, body=SLOW_DOWN), method="PUT", times=1))
        outcome = await upload(server, [f], tmp_path / "s")
        assert len(outcome.done) == 1
        for request in puts(storage):  # the client's (the backend signs its own calls)
            assert "synapse-access-token" not in request.headers
            assert "authorization" not in request.headers
            assert server.token not in str(request.headers)
        text = " ".join(outcome.logs()) + " ".join(str(e) for e in outcome.events)
        assert "Signature" not in text and "X-Amz" not in text
        assert outcome.states() == [JobState.DONE]
