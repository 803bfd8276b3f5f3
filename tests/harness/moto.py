"""A real S3-compatible server on loopback: moto's standalone `moto_server`, one per test.

Started as a subprocess on a free port of 127.0.0.1 and stopped after the test; never
an in-process mock. Tests that need it skip, saying why, when moto is not installed.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

BUCKET = "synapse-test"
START_TIMEOUT = 30.0
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "moto-test-key",
    "AWS_SECRET_ACCESS_KEY": "moto-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class MotoServer:
    endpoint: str
    bucket: str
    process: subprocess.Popen[bytes]

    def client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint)

    def object_bytes(self, key: str) -> bytes:
        return bytes(self.client().get_object(Bucket=self.bucket, Key=key)["Body"].read())


@contextlib.contextmanager
def moto_server(bucket: str = BUCKET) -> Iterator[MotoServer]:
    """Run moto_server until the block ends (the caller sets the AWS_* variables)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **CREDENTIALS},
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                httpx.get(endpoint + "/moto-api/", timeout=2)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.05)
        server = MotoServer(endpoint, bucket, process)
        server.client().create_bucket(Bucket=bucket)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def moto_process() -> Iterator[MotoServer]:
    """One moto_server for the session (it takes seconds to start); tests get own buckets."""
    if importlib.util.find_spec("moto") is None or importlib.util.find_spec("boto3") is None:
        pytest.skip("moto[server] and boto3 are not installed (pip install -e '.[test]')")
    saved = {name: os.environ.get(name) for name in CREDENTIALS}
    os.environ.update(CREDENTIALS)  # for the bucket made here; tests set theirs below
    try:
        with moto_server() as server:
            yield server
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture
def moto(moto_process: MotoServer, monkeypatch: pytest.MonkeyPatch) -> MotoServer:
    """moto_server on loopback with a fresh bucket; AWS_* variables point boto3 at test keys."""
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    bucket = f"test-{uuid.uuid4().hex[:16]}"
    moto_process.client().create_bucket(Bucket=bucket)
    return MotoServer(moto_process.endpoint, bucket, moto_process.process)
