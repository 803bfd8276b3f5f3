"""`synapse-tui serve` options: size and duration parsing, tokens, the loopback warning."""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

import synapse_tui
from synapse_tui.server import cli, runner

REPO = Path(synapse_tui.__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0", 0), ("1048576", 1 << 20), ("512K", 512 << 10), ("10m", 10 << 20), ("1.5G", 3 << 29),
     ("2T", 2 << 40), ("20GiB", 20 << 30), ("7 MB", 7 << 20)],
)  # fmt: skip
def test_parse_size(text: str, expected: int) -> None:
    assert cli.parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "G", "-1", "1.5", "10X", "1e9", "ten"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid size") as info:
        cli.parse_size(text)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("90", 90.0), ("30s", 30.0), ("15m", 900.0), ("12h", 43200.0), ("1.5d", 129600.0)],
)
def test_parse_duration(text: str, expected: float) -> None:
    assert cli.parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "0", "0s", "-5", "1w", "h", "soon"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        cli.parse_duration(text)


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return parser.parse_args(argv)


def test_defaults_and_collections() -> None:
    args = parse()
    assert (args.bind, args.port, args.expire_after, args.prefix) == (
        "127.0.0.1",
        8000,
        86400.0,
        "",
    )
    args = parse("--collection", "images:image,meta", "--collection", "docs:pdf",
                 "--max-bytes", "2G", "--expire-after", "6h")  # fmt: skip
    named = [(name, [s.name for s in specs]) for name, specs in args.collection]
    assert named == [("images", ["image", "meta"]), ("docs", ["pdf"])]
    assert (args.max_bytes, args.expire_after) == (2 << 30, 21600.0)
    for bad in ("images", "images:", ":a", "x:a,a"):
        with pytest.raises(SystemExit):
            parse("--collection", bad)


def test_non_loopback_bind_warns(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    def refuse(host: str, port: int) -> None:
        raise OSError("not in tests")

    monkeypatch.setattr(runner, "bind", refuse)
    args = parse("--bind", "0.0.0.0", "--token", "t", "--root", str(tmp_path))
    assert cli.run(args) == 1
    err = capsys.readouterr().err
    assert "warning: listening on 0.0.0.0" in err and "cannot listen" in err
    assert runner.is_loopback("127.0.0.1") and runner.is_loopback("::1")
    assert not runner.is_loopback("0.0.0.0") and not runner.is_loopback("192.168.1.2")


def serve(tmp_path: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "synapse_tui.server", "--port", "0", "--root",
         str(tmp_path / "root"), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
    )  # fmt: skip


def stop(proc: subprocess.Popen[str]) -> tuple[str, str]:
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    return out, err


def test_generated_token_is_printed_once(tmp_path: Path) -> None:
    proc = serve(tmp_path)
    assert proc.stdout is not None
    lines = [proc.stdout.readline() for _ in range(3)]
    url = re.search(r" at (http://127\.0\.0\.1:\d+) ", lines[0])
    token = re.search(r"Access token \(shown once\): (\S+)", lines[1])
    assert url and token, lines
    assert lines[2].strip() == (
        f"export SYNAPSE_HOST={url.group(1)} SYNAPSE_ACCESS_TOKEN={token.group(1)}"
    )
    h = {"Synapse-Access-Token": f"Token {token.group(1)}"}
    assert httpx.get(url.group(1) + "/chunked_upload/", headers=h).status_code == 200
    out, err = stop(proc)
    assert token.group(1) not in out + err


def test_token_from_the_environment_is_not_printed(tmp_path: Path) -> None:
    proc = serve(tmp_path, "--prefix", "/api", env={cli.TOKEN_ENV: "env-secret"})
    assert proc.stdout is not None
    first = proc.stdout.readline()
    url = re.search(r" at (http://\S+) ", first)
    assert url and url.group(1).endswith("/api"), first
    r = httpx.get(url.group(1) + "/chunked_upload/", headers={"Authorization": "Token env-secret"})
    assert r.status_code == 200
    out, err = stop(proc)
    assert "env-secret" not in first + out + err
