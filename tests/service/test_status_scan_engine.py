"""`status` and `scan` are clients of a running engine (a page at a time); with none, or
with --foreground, they read the journal themselves and start nothing."""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from synapse_tui.cli import main
from tests.service.conftest import Env, engine_pid

KIB = 1024
Answer = Callable[[dict[str, Any]], dict[str, Any]]


class FakeEngine:
    """A listener on <state>/engine.sock that records each request and answers it with
    `answer`: proves what the command asks the engine, and that it asks at all."""

    def __init__(self, state: Path, answer: Answer) -> None:
        state.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.requests: list[dict[str, Any]] = []
        self.answer = answer
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(state / "engine.sock"))
        self.sock.listen(4)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn, conn.makefile("rwb") as f:
                for line in f:
                    req = json.loads(line)
                    self.requests.append(req)
                    if req["cmd"] == "hello":
                        body: dict[str, Any] = {"pid": os.getpid(), "host": None}
                    else:
                        body = self.answer(req)
                    f.write(json.dumps({"reply": req["id"], "ok": True, **body}).encode() + b"\n")
                    f.flush()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def fake(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[Answer], FakeEngine]]:
    monkeypatch.delenv("SYNAPSE_TUI_FOREGROUND", raising=False)
    monkeypatch.setenv("SYNAPSE_TUI_STATE_DIR", str(tmp_path / "state"))
    made: list[FakeEngine] = []

    def make(answer: Answer) -> FakeEngine:
        made.append(FakeEngine(tmp_path / "state", answer))
        return made[-1]

    yield make
    for f in made:
        f.close()


def _row(job_id: int) -> dict[str, Any]:
    return {
        "id": job_id,
        "state": "queued",
        "path": f"/data/f{job_id}.bin",
        "size": 100,
        "offset": 25,
        "host": "http://h",
        "upload_id": None,
        "md5": None,
        "attempts": 0,
        "last_error": None,
    }


def test_status_pages_through_the_running_engine(
    fake: Callable[[Answer], FakeEngine], capsys: pytest.CaptureFixture[str]
) -> None:
    def answer(req: dict[str, Any]) -> dict[str, Any]:
        if req["after_priority"] is None:  # first page: two rows and a cursor
            return {"jobs": [_row(1), _row(2)], "next": [0, 2]}
        assert (req["after_priority"], req["after_id"]) == (0, 2)
        return {"jobs": [_row(3)], "next": None}

    engine = fake(answer)
    assert main(["status"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["ID", "STATE", "PROGRESS", "PATH"]
    assert [line.split()[0] for line in out[1:]] == ["1", "2", "3"]
    assert "25%" in out[1] and out[1].endswith("/data/f1.bin")
    asked = [r for r in engine.requests if r["cmd"] == "status_jobs"]
    assert len(asked) == 2 and all(0 < r["limit"] <= 1000 for r in asked)
    assert not asked[0]["every"]

    assert main(["status", "--json", "--all"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["id"] for x in lines] == [1, 2, 3] and lines[0] == {"event": "job", **_row(1)}
    assert [r for r in engine.requests if r["cmd"] == "status_jobs"][-1]["every"]


def test_status_prune_goes_to_the_engine(
    fake: Callable[[Answer], FakeEngine], capsys: pytest.CaptureFixture[str]
) -> None:
    engine = fake(lambda req: {"pruned": 5, "kept": 1} if req["cmd"] == "prune" else {})
    assert main(["status", "--prune"]) == 0
    assert (
        capsys.readouterr().out == "pruned 5 finished, failed or cancelled jobs (kept 1 "
        "holding collection records)\n"
    )
    assert [r["cmd"] for r in engine.requests] == ["hello", "prune"]


def test_scan_runs_in_the_engine_with_paths_shown_as_given(
    fake: Callable[[Answer], FakeEngine],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    base = str(tmp_path / "d")
    pages = [
        {"findings": [{"kind": "duplicates", "path": f"{base}/b", "duplicate_of": f"{base}/a"}],
         "done": False},
        {"findings": [{"kind": "refused", "path": f"{base}/fifo", "reason": "special file"}],
         "done": True, "files": 2, "bytes": 20},
    ]  # fmt: skip

    def answer(req: dict[str, Any]) -> dict[str, Any]:
        return {"scan": 9} if req["cmd"] == "scan" else pages.pop(0)

    engine = fake(answer)
    assert main(["scan", "d", "--json", "--host", "http://h"]) == 0
    *found, result = [json.loads(ln) for ln in capsys.readouterr().out.splitlines()]
    assert found == [
        {"event": "duplicate", "path": "d/b", "duplicate_of": "d/a"},
        {"event": "skipped", "path": "d/fifo", "reason": "special file"},
    ]
    assert result["duplicate_paths"] == [{"path": "d/b", "duplicate_of": "d/a"}]
    assert result["skipped_paths"] == [{"path": "d/fifo", "reason": "special file"}]
    assert (result["files"], result["bytes"], result["duplicates"]) == (2, 20, 1)
    start = next(r for r in engine.requests if r["cmd"] == "scan")
    assert start["paths"] == [base] and start["host"] == "http://h"
    assert [r["scan"] for r in engine.requests if r["cmd"] == "scan_page"] == [9, 9]


@pytest.mark.parametrize("how", ["option", "env"])
def test_foreground_reads_the_journal_itself(
    how: str,
    fake: Callable[[Answer], FakeEngine],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    engine = fake(lambda req: {"jobs": [_row(1)], "next": None})
    extra = ["--foreground"] if how == "option" else []
    if how == "env":
        monkeypatch.setenv("SYNAPSE_TUI_FOREGROUND", "1")
    assert main(["status", *extra]) == 0
    assert capsys.readouterr().out.startswith("no unfinished jobs")
    (tmp_path / "x").write_bytes(b"12345")
    assert main(["scan", str(tmp_path / "x"), *extra]) == 0
    assert capsys.readouterr().out.startswith("1 files, 5 B;")
    assert engine.requests == []


# -- the real engine ----------------------------------------------------------------------------


def _jobs(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_status_and_scan_without_an_engine_start_none(engine_env: Env, tmp_path: Path) -> None:
    f = tmp_path / "a.bin"
    f.write_bytes(os.urandom(3 * KIB))
    up = engine_env.run("upload", str(f), "--foreground")
    assert up.returncode == 0, up.stderr
    st = engine_env.run("status", "--all", "--json")
    assert st.returncode == 0, st.stderr
    [job] = _jobs(st.stdout)
    assert (job["state"], job["path"]) == ("done", str(f))
    sc = engine_env.run("scan", str(f), "--json")
    assert sc.returncode == 0 and _jobs(sc.stdout)[-1]["already_uploaded"] == 1
    assert engine_pid(engine_env.state) is None
    assert not (engine_env.state / "engine.sock").exists()


def test_status_and_scan_through_a_running_engine_match_the_journal(
    engine_env: Env, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    done = data / "done.bin"
    done.write_bytes(os.urandom(5 * KIB))
    (data / "copy.bin").write_bytes(done.read_bytes())
    first = engine_env.run("upload", str(done), "--foreground")
    assert first.returncode == 0, first.stderr
    slow = tmp_path / "slow.bin"
    slow.write_bytes(os.urandom(1024 * KIB))
    det = engine_env.run("upload", str(slow), "--detach", "--bwlimit", "32K", "--chunk-size", "64K")
    assert det.returncode == 0, det.stderr
    pid = engine_pid(engine_env.state)
    assert pid is not None

    via = engine_env.run("status", "--json")
    own = engine_env.run("status", "--json", "--foreground")
    assert via.returncode == own.returncode == 0, via.stderr + own.stderr
    [live] = _jobs(via.stdout)
    assert live["path"] == str(slow) and live["state"] in ("queued", "hashing", "uploading")
    assert [j["id"] for j in _jobs(own.stdout)] == [live["id"]]
    every = _jobs(engine_env.run("status", "--json", "--all").stdout)
    assert [j["id"] for j in every] == [
        j["id"] for j in _jobs(engine_env.run("status", "--json", "--all", "--foreground").stdout)
    ]
    assert {j["path"] for j in every} == {str(done), str(slow)}
    plain = engine_env.run("status")
    assert plain.stdout.splitlines()[0].split() == ["ID", "STATE", "PROGRESS", "PATH"]

    # scan: relative paths shown as given; the ledger of the engine's journal answers.
    sc = engine_env.run("scan", "data", "--json", cwd=tmp_path)
    fg = engine_env.run("scan", "data", "--json", "--foreground", cwd=tmp_path)
    assert sc.returncode == fg.returncode == 0, sc.stderr + fg.stderr
    *found_a, a = _jobs(sc.stdout)
    *found_b, b = _jobs(fg.stdout)
    for key in ("seconds", "hash_rate"):
        a.pop(key), b.pop(key)
    assert found_a == found_b and len(found_a) == 3  # the same lines, as found
    assert a == b and a["already_uploaded"] == 2 and a["duplicates"] == 1
    assert a["duplicate_paths"][0]["path"].startswith("data/")
    gone = engine_env.run("scan", "data", "missing", cwd=tmp_path)  # exit 1, as in-process
    gone_fg = engine_env.run("scan", "data", "missing", "--foreground", cwd=tmp_path)
    assert gone.returncode == gone_fg.returncode == 1
    assert gone.stderr == gone_fg.stderr and "failed     missing:" in gone.stderr
    assert gone.stdout.split("; hashed")[0] == gone_fg.stdout.split("; hashed")[0]

    pruned = engine_env.run("status", "--prune", "--json")
    assert json.loads(pruned.stdout) == {"event": "pruned", "pruned": 1, "kept": 0}
    assert engine_pid(engine_env.state) == pid  # the same engine answered all of it
    left = _jobs(engine_env.run("status", "--json", "--all").stdout)
    assert [j["path"] for j in left] == [str(slow)]
