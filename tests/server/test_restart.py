"""Crashes and restarts on the same root: the offset never claims bytes that are not on disk."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import synapse_tui
from synapse_tui.server import BackgroundServer, ServerConfig
from synapse_tui.server.store import RootBusyError
from tests.server.helpers import auth, md5, put, raw_chunk, wait_until

MiB = 1 << 20
TOKEN = "tok-restart"
REPO = Path(synapse_tui.__file__).resolve().parents[1]


class ServeProcess:
    """`python -m synapse_tui.server` on a free port, killable with SIGKILL."""

    def __init__(self, root: Path) -> None:
        env = dict(os.environ, PYTHONPATH=str(REPO))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "synapse_tui.server", "--port", "0", "--token", TOKEN,
             "--root", str(root), "--prefix", "/api"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO,
        )  # fmt: skip
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        found = re.search(r" at (http://\S+)", line)
        assert found, (line, self.proc.stderr.read() if self.proc.stderr else "")
        self.url = found.group(1)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            return self.proc.wait(15)
        return self.proc.returncode


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[list[ServeProcess]]:
    procs: list[ServeProcess] = []
    yield procs
    for p in procs:
        if p.proc.poll() is None:
            p.kill()


def test_sigkill_mid_chunk_then_restart(tmp_path: Path, serve: list[ServeProcess]) -> None:
    root = tmp_path / "root"
    data = os.urandom(6 * MiB)
    serve.append(ServeProcess(root))
    api = serve[0].url
    with httpx.Client(timeout=30) as c:
        first = put(c, api + "/chunked_upload/", data[: 2 * MiB], token=TOKEN, total=len(data))
        assert first.status_code == 200
    url, upload_id = first.json()["url"], first.json()["id"]
    path = root / "files" / upload_id
    cut, head, _tail = raw_chunk(url, TOKEN, 3 * MiB, 2 * MiB, len(data))
    cut.send(head + data[2 * MiB : 4 * MiB + 5])
    wait_until(lambda: path.stat().st_size > 3 * MiB, "unacknowledged bytes on disk")
    serve[0].kill()
    cut.close()
    assert path.stat().st_size > 2 * MiB  # the crash left bytes past the offset

    serve.append(ServeProcess(root))
    api = serve[1].url
    url = f"{api}/chunked_upload/{upload_id}/"
    with httpx.Client(timeout=30) as c:
        state = c.get(url, headers=auth(TOKEN)).json()
        assert state["offset"] == 2 * MiB == path.stat().st_size
        assert path.read_bytes() == data[: 2 * MiB]
        for start in (2 * MiB, 4 * MiB):
            r = put(
                c, url, data[start : start + 2 * MiB], token=TOKEN, start=start, total=len(data)
            )
            assert r.status_code == 200, r.text
        r = c.post(url, json={"md5": md5(data)}, headers=auth(TOKEN))
        assert r.status_code == 200, r.text  # the MD5 was rebuilt from disk after the restart
        assert c.get(r.json()["file"], headers=auth(TOKEN)).content == data
    assert serve[1].stop() == 0


def config(root: Path) -> ServerConfig:
    return ServerConfig(root=root, tokens=[TOKEN])


def test_graceful_restart_rebuilds_the_md5(tmp_path: Path) -> None:
    root = tmp_path / "root"
    data = os.urandom(3 * MiB + 7)
    with BackgroundServer(config(root)) as srv, httpx.Client(timeout=30) as c:
        r = put(c, srv.url + "/chunked_upload/", data[:MiB], token=TOKEN, total=len(data))
        upload_id = r.json()["id"]
        r = put(c, r.json()["url"], data[MiB : 2 * MiB], token=TOKEN, start=MiB, total=len(data))
        assert r.status_code == 200
    with BackgroundServer(config(root)) as srv, httpx.Client(timeout=30) as c:
        assert srv.app is not None
        assert srv.app.state.backend.sessions.latest(upload_id) is None  # memory is gone
        url = f"{srv.url}/chunked_upload/{upload_id}/"
        r = put(c, url, data[2 * MiB :], token=TOKEN, start=2 * MiB, total=len(data))
        assert r.status_code == 200
        # The PUT started a background re-hash of the bytes on disk; it catches up.
        sessions = srv.app.state.backend.sessions
        wait_until(lambda: sessions.hash_at(upload_id, len(data)) is not None, "the MD5 catch-up")
        assert sessions.hash_at(upload_id, len(data)).hexdigest() == md5(data)
        wrong = c.post(url, data={"md5": md5(data[:-1])}, headers=auth(TOKEN))
        assert wrong.status_code == 400 and wrong.json()["detail"] == "checksum does not match"
        ok = c.post(url, data={"md5": md5(data)}, headers=auth(TOKEN))
        assert ok.status_code == 200 and ok.json()["checksum"] == md5(data)


def test_recovery_trims_and_lowers_offsets(tmp_path: Path) -> None:
    root = tmp_path / "root"
    with BackgroundServer(config(root)) as srv, httpx.Client(timeout=30) as c:
        long = put(c, srv.url + "/chunked_upload/", b"a" * 1000, token=TOKEN, total=5000).json()
        short = put(c, srv.url + "/chunked_upload/", b"b" * 1000, token=TOKEN, total=5000).json()
    files = root / "files"
    with open(files / long["id"], "ab") as fh:
        fh.write(b"written but never acknowledged")
    os.truncate(files / short["id"], 600)  # a disk that lost acknowledged bytes
    (files / "00000000-0000-4000-8000-000000000000").write_bytes(b"orphan")
    (files / "stray.tmp").write_bytes(b"stray")
    with BackgroundServer(config(root)) as srv, httpx.Client(timeout=30) as c:
        got_long = c.get(f"{srv.url}/chunked_upload/{long['id']}/", headers=auth(TOKEN)).json()
        got_short = c.get(f"{srv.url}/chunked_upload/{short['id']}/", headers=auth(TOKEN)).json()
        assert got_long["offset"] == 1000 == (files / long["id"]).stat().st_size
        assert got_short["offset"] == 600 == (files / short["id"]).stat().st_size
        assert sorted(p.name for p in files.iterdir()) == sorted([long["id"], short["id"]])
        rest = b"b" * 4400
        r = put(c, got_short["url"], rest, token=TOKEN, start=600, total=5000)
        assert r.status_code == 200
        done = c.post(got_short["url"], data={"md5": md5(b"b" * 5000)}, headers=auth(TOKEN))
        assert done.status_code == 200


def test_one_server_per_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    with BackgroundServer(config(root)), pytest.raises(RootBusyError):
        BackgroundServer(config(root)).start()
    with BackgroundServer(config(root)) as again:  # released on stop
        assert again.url
