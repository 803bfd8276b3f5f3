"""The official synapse-sdk (Python >= 3.12, own interpreter) uploads to the backend unchanged."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.harness.embedded import EmbeddedServer
from tests.harness.sdk_env import find
from tests.server.helpers import auth, md5

SCRIPT = """
import json, sys
from synapse_sdk.clients.backend import BackendClient
url, token, path, chunk = sys.argv[1:5]
client = BackendClient(url, access_token=token)
print(json.dumps(client.create_chunked_upload(path, chunk_size=int(chunk))))
"""


@pytest.fixture(scope="module")
def sdk() -> Path:
    python, why = find()
    if python is None:
        pytest.skip(why)
    return python


def test_official_sdk_uploads_in_chunks(
    sdk: Path, embedded_server: EmbeddedServer, tmp_path: Path
) -> None:
    import httpx

    srv = embedded_server
    data = os.urandom(3 * 65536 + 4321)
    source = tmp_path / "from-the-sdk.bin"
    source.write_bytes(data)
    proc = subprocess.run(
        [str(sdk), "-c", SCRIPT, srv.url, srv.token, str(source), "65536"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["status"] == 2 and result["checksum"] == md5(data)
    assert result["filename"] == source.name
    stored = httpx.get(result["file"], headers=auth(srv.token), timeout=30)
    assert stored.content == data
    assert (srv.root / "files" / result["id"]).read_bytes() == data
