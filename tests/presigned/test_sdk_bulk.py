"""The official SDK's `upload_files_bulk(strategy='presigned')` against `serve --storage`."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from tests.faults.helpers import make_file
from tests.harness.embedded import EmbeddedServer
from tests.harness.moto import MotoServer
from tests.harness.sdk_env import sdk_python
from tests.presigned.conftest import PART

DRIVER = Path(__file__).resolve().parents[1] / "bench" / "sdk_bulk_driver.py"


def test_the_sdk_bulk_path_uploads_small_and_multipart_files(
    s3_server: EmbeddedServer, moto: MotoServer, tmp_path: Path
) -> None:
    python = sdk_python()
    if python is None:
        pytest.skip("no Python >= 3.12 with synapse-sdk (set SYNAPSE_TUI_SDK_PYTHON)")
    files = [make_file(tmp_path / f"s{i}.bin", 1000 * (i + 1), seed=i) for i in range(3)]
    files.append(make_file(tmp_path / "big.bin", 2 * PART + 77, seed=9))
    proc = subprocess.run(
        [str(python), str(DRIVER), s3_server.url, s3_server.token, "4", *map(str, files)],
        capture_output=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    answer = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    assert answer["created"] == 4 and answer["failed"] == 0, answer
    rows = s3_server.backend.store._conn().execute(
        "SELECT file_key, checksum, upload_id FROM presigned_files WHERE data_file IS NOT NULL"
    )
    landed = {}
    for key, sha1, upload_id in rows:
        data = moto.object_bytes(key)
        assert hashlib.sha1(data).hexdigest() == sha1
        landed[sha1] = upload_id is not None
    expected = {hashlib.sha1(f.read_bytes()).hexdigest(): f.name == "big.bin" for f in files}
    assert landed == expected  # the big one went multipart, the others in one PUT
