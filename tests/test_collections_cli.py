"""`synapse-tui collections`, `--collection NAME`, and the start-up check of the API path."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from synapse_tui.cli import main
from synapse_tui.server import BackgroundServer, ServerConfig
from synapse_tui.server.specs import parse_collection

TOKEN = "cli-collections-token"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    config = ServerConfig(
        root=tmp_path / "srv",
        tokens=[TOKEN],
        prefix="/api",
        collections=[parse_collection("photos:image*:image,label?:data"), ("docs", ["pdf"])],
    )
    with BackgroundServer(config) as srv:
        yield srv.url


def cli(url: str, state: Path, *args: str) -> int:
    return main([*args, "--host", url, "--token", TOKEN, "--state-dir", str(state)])


def test_collections_lists_ids_names_and_specs(
    server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(server, tmp_path / "st", "collections") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["1", "photos", "image*:image,label?:data"]
    assert lines[2].split() == ["2", "docs", "pdf*:data"]
    assert cli(server, tmp_path / "st", "collections", "--json") == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["id"], r["name"]) for r in rows] == [(1, "photos"), (2, "docs")]
    assert rows[0]["file_specifications"][1] == {
        "name": "label", "file_type": "data", "is_required": False, "is_primary": False,
    }  # fmt: skip


def test_upload_takes_a_collection_by_name(
    server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.png").write_bytes(b"\x89PNG a")
    state = tmp_path / "st"
    assert cli(server, state, "upload", str(data), "--collection", "photos", "--spec", "image") == 0
    units = httpx.get(server + "/data_units/", headers={"Synapse-Access-Token": f"Token {TOKEN}"})
    (unit,) = units.json()["results"]
    assert unit["data_collection"] == 1 and unit["files"]["image"]["path"] == "a.png"
    capsys.readouterr()
    assert cli(server, state, "upload", str(data), "--collection", "nope", "--spec", "x") == 2
    err = capsys.readouterr().err
    assert "no data collection named 'nope'" in err and "photos (1)" in err
    assert cli(server, state, "upload", str(data), "--collection", "9", "--spec", "x") == 2
    assert "no data collection 9" in capsys.readouterr().err


def test_a_wrong_api_path_is_said_once_at_start(
    server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for i in range(3):
        (data / f"{i}.bin").write_bytes(b"x" * (i + 1))
    wrong = server.removesuffix("/api")  # the server serves /api only
    for command in (["upload", str(data)], ["collections"]):
        assert cli(wrong, tmp_path / "st", *command) == 2
        err = capsys.readouterr().err
        assert err.count("no Synapse API at this URL") == 1, err
        assert "upload not found" not in err
    assert not (tmp_path / "st" / "journal.sqlite3").exists()  # refused before the journal
    assert cli(server, tmp_path / "st2", "upload", str(data)) == 0  # the right one works
