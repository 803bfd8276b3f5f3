"""The command line as a person meets it: typos, option order, help, refusals, status, scan."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from synapse_tui import cli
from synapse_tui.server import BackgroundServer, ServerConfig
from tests.harness.embedded import EmbeddedServer


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = cli.main(list(argv))
    except SystemExit as exc:  # argparse: --help, usage errors
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def backend(srv: EmbeddedServer) -> list[str]:
    return ["--host", srv.url, "--token", srv.token]


def test_a_misspelled_command_suggests_the_closest(capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, err = run(capsys, "staus")
    assert code == 2
    assert err.strip() == "synapse-tui: error: unknown command 'staus'; did you mean 'status'?"


def test_a_folder_named_like_a_typo_is_still_the_dashboards(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "staus").mkdir()
    assert cli._unknown_command("staus") is None
    assert cli._unknown_command("uplod") == "unknown command 'uplod'; did you mean 'upload'?"
    assert cli._unknown_command("zzzzzz") is None  # nothing close: the dashboard's DIR


def test_options_before_the_command(
    embedded_server: EmbeddedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, *backend(embedded_server), "status", "--json")
    assert code == 0, err
    code, out, err = run(capsys, "--json", "status")
    assert code == 0, err
    assert out == ""  # JSON mode, no jobs: no lines at all


def test_help_shows_dir_the_dashboards_options_and_the_commands(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0
    assert "[DIR]" in out and "--chunk-size" in out and "--host" in out
    for command in cli.COMMANDS:
        assert f"  {command} " in out


@pytest.mark.parametrize("command", ["scan", "status", "check"])
def test_json_has_help_text(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    args = [command, "--help"] if command != "scan" else ["scan", "x", "--help"]
    code, out, _ = run(capsys, *args)
    assert code == 0
    [line] = [ln for ln in out.splitlines() if ln.strip().startswith("--json")]
    assert "JSON" in line


def test_serve_help_shows_the_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "serve", "--help")
    assert code == 0
    text = " ".join(out.split())
    assert "(default 127.0.0.1)" in text and "(default 8000)" in text
    assert "(default 1d)" in text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["upload", "x", "--retries", "-1"], "must be 0 or more"),
        (["upload", "x", "-j", "0"], "must be 1 or more"),
        (["upload", "x", "--chunk-size", "1.5"], "not a whole number of bytes"),
        (["upload", "x", "--chunk-size", "0.3K"], "not a whole number of bytes"),
    ],
)
def test_bad_numbers_are_refused(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 2 and message in err
    assert "Traceback" not in err


def test_a_user_token_without_a_tenant_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "f.bin"
    f.write_bytes(b"x")
    code, _, err = run(
        capsys, "upload", str(f), "--host", "http://127.0.0.1:9", "--user-token", "u"
    )
    assert code == 2
    assert err.splitlines() == [
        "synapse-tui: error: a user token needs a tenant: give --tenant "
        "(or set SYNAPSE_PLUGIN_RUN_TENANT)"
    ]


def test_an_empty_folder_warns(
    embedded_server: EmbeddedServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    for command in ("scan", "upload"):
        code, _, err = run(capsys, command, str(empty), *backend(embedded_server))
        assert code == 0, err
        assert f"warning: no files found in {empty}" in err, command


def test_a_missing_path_counts_as_failed_in_the_scan_line_and_the_summary(
    embedded_server: EmbeddedServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = str(tmp_path / "nope.bin")
    code, out, _ = run(capsys, "upload", missing, "--json", *backend(embedded_server))
    assert code == 1
    lines = [json.loads(ln) for ln in out.splitlines()]
    [scan] = [e for e in lines if e["event"] == "scan"]
    [summary] = [e for e in lines if e["event"] == "summary"]
    assert (scan["skipped"], scan["failed"]) == (0, 1)
    assert summary["failed"] == 1
    code, out, _ = run(capsys, "upload", missing, *backend(embedded_server))
    assert "0 skipped, 1 failed" in out
    code, out, _err = run(capsys, "scan", missing, "--json")
    [found, result] = [json.loads(ln) for ln in out.splitlines()]
    assert found == {"event": "failed", "path": missing, "reason": found["reason"]}
    assert code == 1 and (result["skipped"], result["failed"]) == (0, 1)
    assert [p["path"] for p in result["failed_paths"]] == [missing]


def test_duplicates_is_a_count_in_scan_and_upload(
    embedded_server: EmbeddedServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "a.bin").write_bytes(b"same bytes")
    (folder / "b.bin").write_bytes(b"same bytes")
    _, out, _ = run(capsys, "scan", str(folder), "--json")
    [duplicate, scanned] = [json.loads(ln) for ln in out.splitlines()]
    assert duplicate["event"] == "duplicate" and duplicate["path"] == str(folder / "b.bin")
    _, out, _ = run(capsys, "upload", str(folder), "--json", *backend(embedded_server))
    [uploaded] = [e for e in map(json.loads, out.splitlines()) if e["event"] == "scan"]
    assert scanned["duplicates"] == uploaded["duplicates"] == 1
    assert [d["path"] for d in scanned["duplicate_paths"]] == [str(folder / "b.bin")]


@pytest.fixture
def capped_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    """The embedded backend refusing files over 10 bytes: a file fails for good."""
    config = ServerConfig(root=tmp_path_factory.mktemp("capped"), tokens=["tok"], max_bytes=10)
    server = BackgroundServer(config)
    url = server.start()
    try:
        yield ["--host", url, "--token", "tok"]
    finally:
        server.stop()


def test_status_hides_failures_a_later_run_uploaded_and_prune_clears_history(
    capped_server: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    srv = capped_server
    f = tmp_path / "later.bin"
    f.write_bytes(b"too large for the server")
    code, _, err = run(capsys, "upload", str(f), *srv)
    assert code == 1, err
    code, out, _ = run(capsys, "status", "--json", *srv)
    assert [json.loads(ln)["state"] for ln in out.splitlines()] == ["failed"]
    f.write_bytes(b"fits")  # fixed, and uploaded by a later run
    code, _, err = run(capsys, "upload", str(f), *srv)
    assert code == 0, err
    code, out, _ = run(capsys, "status", "--json", *srv)
    assert out == ""  # the failure is history: the file is uploaded
    code, out, _ = run(capsys, "status", "--all", "--json", *srv)
    assert sorted(json.loads(ln)["state"] for ln in out.splitlines()) == ["done", "failed"]
    code, out, _ = run(capsys, "status", "--prune", *srv)
    assert code == 0 and out.startswith("pruned 2 ")
    code, out, _ = run(capsys, "status", "--all", "--json", *srv)
    assert out == ""
    code, out, _ = run(capsys, "status", "--prune", "--json", *srv)
    assert json.loads(out) == {"event": "pruned", "pruned": 0, "kept": 0}
    # What was uploaded stays known: the file is not sent again.
    code, out, _ = run(capsys, "upload", str(f), "--json", *srv)
    assert code == 0
    assert [e["event"] for e in map(json.loads, out.splitlines())].count("file_skipped") == 1


def test_a_crash_at_launch_of_the_dashboard_exits_non_zero(tmp_path: Path) -> None:
    """Textual catches the crash and prints it; the shell must still see a failure."""
    code = (
        "import sys\n"
        "import synapse_tui.ui.screens.dashboard as d\n"
        "def broken(*a, **k):\n"
        "    raise TypeError('Footer() got an unexpected keyword argument')\n"
        "d.Footer = broken\n"
        "from synapse_tui.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, "--host", "http://127.0.0.1:9", "--token", "t", str(tmp_path)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "TERM": "xterm"},
    )
    assert "unexpected keyword argument" in proc.stderr + proc.stdout
    assert proc.returncode != 0


def test_prune_keeps_the_jobs_a_collection_rerun_reads(
    embedded_server: EmbeddedServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A done job holding its collection steps stays: without it a rerun with --collection
    could register the file a second time."""
    f = tmp_path / "photo.jpg"
    f.write_bytes(b"jpeg bytes")
    srv = backend(embedded_server)
    code, _, err = run(capsys, "upload", str(f), "--collection", "1", "--spec", "image", *srv)
    assert code == 0, err
    code, out, _ = run(capsys, "status", "--prune", "--json", *srv)
    assert json.loads(out) == {"event": "pruned", "pruned": 0, "kept": 1}
    code, out, err = run(capsys, "upload", str(f), "--collection", "1", "--spec", "image", *srv)
    assert code == 0, err
    answer = httpx.get(
        embedded_server.url + "/data_units/",
        params={"data_collection": "1"},
        headers=embedded_server.headers(),
        timeout=30,
    ).json()
    units = answer["results"] if isinstance(answer, dict) else answer
    assert len(units) == 1  # registered once, not again after the prune
