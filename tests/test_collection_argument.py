"""`--collection` values that look like numbers but are not ASCII ids, and server-given spec
types with terminal escapes: one clear line, never a traceback or raw escapes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from synapse_tui.cli import main
from synapse_tui.engine.catalog import parse_collection
from synapse_tui.server import BackgroundServer, ServerConfig

TOKEN = "cli-collection-argument-token"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    config = ServerConfig(
        root=tmp_path / "srv", tokens=[TOKEN], prefix="/api", collections=[("photos", ["image"])]
    )
    with BackgroundServer(config) as srv:
        yield srv.url


@pytest.mark.parametrize("value", ["\u00b2", "7" * 5000])
def test_a_collection_that_int_refuses_is_one_line(
    server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.png").write_bytes(b"png")
    args = ["upload", str(data), "--collection", value, "--spec", "image"]
    code = main([*args, "--host", server, "--token", TOKEN, "--state-dir", str(tmp_path / "st")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and "no data collection" in err


def test_spec_types_from_the_server_are_escaped() -> None:
    found = parse_collection(
        {"id": 1, "name": "c", "file_specifications": [{"name": "a", "file_type": "x\x1b]0;t\x07"}]}
    )
    (spec,) = found.details
    assert "\x1b" not in spec.syntax() and "\x07" not in spec.file_type
