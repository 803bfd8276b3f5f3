"""`serve --storage` and `upload --strategy` from the command line; the client needs no boto3."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from synapse_tui.config import load_settings
from tests.harness.moto import CREDENTIALS, MotoServer

REPO = Path(__file__).resolve().parents[2]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "synapse_tui.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env={**os.environ, **(env or {})},
    )


def test_a_bad_storage_gets_one_clear_line(tmp_path: Path) -> None:
    result = run("serve", "--storage", "http://bucket", "--port", "0", "--root", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "synapse-tui serve: invalid storage 'http://bucket': use s3://BUCKET[/PREFIX]"
    ]


def test_a_missing_bucket_stops_serve_at_start(moto: MotoServer, tmp_path: Path) -> None:
    result = run(
        "serve", "--storage", "s3://no-such-bucket-here", "--s3-endpoint", moto.endpoint,
        "--port", "0", "--root", str(tmp_path), env=CREDENTIALS,
    )  # fmt: skip
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert "cannot use the storage s3://no-such-bucket-here/" in line and "404" in line
    assert "Traceback" not in result.stderr


def test_the_client_side_never_imports_boto3() -> None:
    code = (
        "import sys, synapse_tui.engine.presigned, synapse_tui.engine.scheduler, synapse_tui.cli;"
        "assert not {'boto3', 'botocore'} & set(sys.modules), 'boto3 imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, timeout=60)


def test_strategy_from_the_config_file_and_the_command_line(tmp_path: Path) -> None:
    config = Path(os.environ["SYNAPSE_TUI_CONFIG_DIR"]) / "config.json"
    config.write_text('{"strategy": "chunked"}')
    assert load_settings().strategy == "chunked"
    assert load_settings({"strategy": "presigned"}).strategy == "presigned"
    config.write_text('{"strategy": "fast"}')
    result = run("upload", str(tmp_path), "--host", "http://127.0.0.1:9", "--token", "t")
    assert result.returncode == 2
    assert "strategy must be auto, presigned or chunked" in result.stderr
