"""A damaged, emptied or unwritable journal, and folders the user already had (issue 18)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from synapse_tui import paths
from synapse_tui.engine.hashing import Identity
from synapse_tui.engine.journal import Journal

REPO = Path(__file__).resolve().parents[2]
HOST = "http://127.0.0.1:9/api"


def cli(
    state: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The CLI on `state` (`env`: more variables, such as a backend to reach)."""
    env = dict(os.environ, SYNAPSE_TUI_STATE_DIR=str(state), PYTHONPATH=str(REPO), **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "synapse_tui.cli", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def journal_with_a_job(state: Path, jobs: int = 1) -> Path:
    journal = Journal(state)
    for i in range(jobs):
        journal.add_job(f"/data/f{i}.bin".encode(), Identity(10, 1, i, 3), f"{i:032x}", HOST, 64)
    journal.close()
    return state / Journal.FILENAME


def garbage(path: Path) -> None:
    path.write_bytes(os.urandom(5000))


def half(path: Path) -> None:
    db = __import__("sqlite3").connect(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # every page in the file itself
    db.close()
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size // 2)


def folder(path: Path) -> None:
    path.unlink()
    for suffix in ("-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    (path / "inside").mkdir(parents=True)


def empty(path: Path) -> None:
    db = __import__("sqlite3").connect(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    for suffix in ("-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    path.write_bytes(b"")


DAMAGE = {"garbage": garbage, "half-truncated": half, "a-folder": folder, "zero-length": empty}


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_damaged_journal_is_moved_aside_and_reported(tmp_path: Path, kind: str) -> None:
    """`status` and `upload` on a damaged (or emptied) journal: one line naming the file
    and what to do, exit 2, no traceback; the journal is renamed aside, never deleted, and
    the next run starts a new one."""
    state = tmp_path / "state"
    path = journal_with_a_job(state, jobs=200)
    DAMAGE[kind](path)
    before = path.read_bytes() if path.is_file() else None
    result = cli(state, "status")
    assert result.returncode == 2, (result.stdout, result.stderr)
    [line] = result.stderr.strip().splitlines()
    assert str(path) in line and "moved it aside" in line and "run the command again" in line
    assert "Traceback" not in result.stderr
    [aside] = [p for p in state.iterdir() if p.name.startswith("journal.sqlite3.damaged-")]
    assert aside.name in line
    if before is not None:
        assert aside.read_bytes() == before  # kept as it was
    again = cli(state, "status", "--json")
    assert again.returncode == 0, again.stderr
    assert again.stdout == ""  # a new, empty journal
    assert aside.exists()


def test_damage_reported_to_upload_too(tmp_path: Path) -> None:
    state = tmp_path / "state"
    garbage(journal_with_a_job(state))
    f = tmp_path / "a.bin"
    f.write_bytes(b"x")
    result = cli(state, "scan", str(f), "--host", HOST)
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert "journal.sqlite3" in line and "is damaged" in line and "file is not a database" in line


def test_damage_reported_to_upload_and_resume(tmp_path: Path, embedded_server: Any) -> None:
    """Against a live backend: `upload` and `resume` stop before anything is sent, with
    the one line (no "file is not a database" traceback or bare error)."""
    state = tmp_path / "state"
    f = tmp_path / "b.bin"
    f.write_bytes(b"y" * 100)
    env = {"SYNAPSE_HOST": embedded_server.url, "SYNAPSE_ACCESS_TOKEN": embedded_server.token}
    for args in (["upload", str(f), "--json"], ["resume", "--json"]):
        half(journal_with_a_job(state, jobs=200))
        result = cli(state, *args, env=env)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        [line] = result.stderr.strip().splitlines()
        assert str(state / Journal.FILENAME) in line and "moved it aside" in line, line
        assert result.stdout == ""
        for p in state.iterdir():
            if "damaged" in p.name:
                p.rename(tmp_path / p.name)  # out of the way of the next round
        for p in state.iterdir():
            p.unlink()


def test_zero_length_journal_without_the_sidecar_is_new(tmp_path: Path) -> None:
    """A zero-length file with no sidecar is what an older synapse-tui (or a crash in the
    first open) left: a new journal, as before."""
    state = tmp_path / "state"
    state.mkdir()
    (state / Journal.FILENAME).write_bytes(b"")
    journal = Journal(state)
    assert journal.jobs() == []
    journal.close()
    assert (state / "journal.sqlite3.initialised").exists()


def test_an_older_journal_gets_the_sidecar(tmp_path: Path) -> None:
    state = tmp_path / "state"
    path = journal_with_a_job(state)
    (state / "journal.sqlite3.initialised").unlink()
    from synapse_tui.engine.journal_files import JournalError

    Journal(state).close()
    empty(path)
    with pytest.raises(JournalError, match="is empty, though it held a journal"):
        Journal(state)


def _read_only(folder: Path) -> list[str]:
    """The argv prefix that runs a command with `folder` read-only (root ignores modes:
    a read-only bind mount in a private mount namespace instead)."""
    if os.geteuid() != 0:
        folder.chmod(0o500)
        return []
    if shutil.which("unshare") is None:
        pytest.skip("running as root without unshare: cannot make a folder read-only")
    probe = subprocess.run(
        ["unshare", "--mount", "--map-root-user", "true"], capture_output=True, timeout=10
    )
    if probe.returncode != 0:
        pytest.skip(f"running as root and unshare is refused: {probe.stderr!r}")
    script = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" "$0" && exec "$@"'
    return ["unshare", "--mount", "--map-root-user", "sh", "-c", script, str(folder)]


@pytest.mark.parametrize("existing", [True, False], ids=["journal", "no-journal"])
def test_read_only_state_folder_one_line(tmp_path: Path, existing: bool) -> None:
    state = tmp_path / "state"
    if existing:
        journal_with_a_job(state)
    else:
        state.mkdir(mode=0o700)
    prefix = _read_only(state)
    env = dict(os.environ, SYNAPSE_TUI_STATE_DIR=str(state), PYTHONPATH=str(REPO))
    try:
        result = subprocess.run(
            [*prefix, sys.executable, "-m", "synapse_tui.cli", "status"],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        state.chmod(0o700)
    assert result.returncode == 2, (result.stdout, result.stderr)
    [line] = result.stderr.strip().splitlines()
    assert str(state / Journal.FILENAME) in line and "--state-dir" in line, line
    assert "moved" not in line  # not damage: nothing renamed
    assert not [p for p in state.iterdir() if "damaged" in p.name]


def test_existing_shared_folder_is_used_as_is_with_a_warning(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """`--state-dir ~` (or `serve --root ~`): an existing folder keeps its mode, and one
    stderr line says others can read it; a folder made here is 0700, quietly."""
    shared = tmp_path / "home"
    shared.mkdir()
    shared.chmod(0o755)
    Journal(shared).close()
    Journal(shared).close()
    assert stat.S_IMODE(shared.stat().st_mode) == 0o755
    err = capfd.readouterr().err
    assert err.count("\n") == 1 and str(shared) in err and "readable by other users" in err
    fresh = tmp_path / "new" / "state"
    Journal(fresh).close()
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o700
    assert capfd.readouterr().err == ""


def test_existing_private_folder_no_warning(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    mine = tmp_path / "mine"
    mine.mkdir(mode=0o700)
    mine.chmod(0o700)
    assert paths.private_dir(mine) == mine
    assert capfd.readouterr().err == ""


def test_server_root_in_an_existing_folder_keeps_its_mode(tmp_path: Path) -> None:
    """The embedded backend's `--root` goes through the same rule: the existing root keeps
    its mode, the folder it creates inside (files/) is private."""
    from synapse_tui.server.store import Store

    root = tmp_path / "shared-root"
    root.mkdir()
    root.chmod(0o755)
    store = Store(root, clock=lambda: 0.0)
    store.close()
    assert stat.S_IMODE(root.stat().st_mode) == 0o755
    assert stat.S_IMODE((root / "files").stat().st_mode) == 0o700
