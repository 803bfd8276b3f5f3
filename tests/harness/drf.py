"""The real drf-chunked-upload 0.6.0 server (under uvicorn) as a test fixture.

Usage::

    def test_x(drf_server: DrfServer) -> None:          # pytest fixture, default settings
        httpx.put(drf_server.url + "/chunked_upload/", headers=drf_server.auth(), ...)

    with run_drf_server(tmp_path, expire_seconds=0, max_bytes=1000) as srv:
        ...                                             # custom settings
        srv.stop(); srv.start()                         # restart on the same DB/media/port
        srv.kill()                                      # SIGKILL (crash), then srv.start()

``url`` is the API root (``http://127.0.0.1:<port>/api``); ``token`` belongs to
user alice and ``other_token`` to bob; send them as
``Synapse-Access-Token: Token <t>`` (or ``Authorization: Token <t>``).

The Django project lives in ``tests/conformance/drfsite``. The database schema
is migrated once per process into a template SQLite file, which each server
copies. ``expire_seconds`` <= 0 makes every upload expired right after creation
(the library's ``expired`` is ``status == UPLOADING and created_at + delta <= now``):
the creating PUT still succeeds, every later PUT/POST on it answers 410, and a
whole-file ``POST chunked_upload/`` answers 410 too.
"""

from __future__ import annotations

import atexit
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SETTINGS_MODULE = "tests.conformance.drfsite.settings"
ALICE_TOKEN = "token-alice"
BOB_TOKEN = "token-bob"
STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0

_template_lock = threading.Lock()
_template_db: Path | None = None


def _base_env(db: Path, media_root: Path, tmp_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    pythonpath = env.get("PYTHONPATH")
    env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + pythonpath if pythonpath else "")
    env["DJANGO_SETTINGS_MODULE"] = SETTINGS_MODULE
    env["DRFSITE_DB"] = str(db)
    env["DRFSITE_MEDIA_ROOT"] = str(media_root)
    env["DRFSITE_TMP_DIR"] = str(tmp_dir)
    env["DRFSITE_TOKENS"] = f"{ALICE_TOKEN}:alice,{BOB_TOKEN}:bob"
    env.pop("DRFSITE_EXPIRE_SECONDS", None)
    env.pop("DRFSITE_MAX_BYTES", None)
    return env


def template_db() -> Path:
    """Migrate (once per process) into a template SQLite file and return its path."""
    global _template_db
    with _template_lock:
        if _template_db is None:
            folder = Path(tempfile.mkdtemp(prefix="drfsite-template-"))
            atexit.register(shutil.rmtree, folder, True)
            db = folder / "db.sqlite3"
            (folder / "media").mkdir()
            proc = subprocess.run(
                [sys.executable, "-m", "django", "migrate", "--noinput", "-v", "0"],
                cwd=REPO_ROOT,
                env=_base_env(db, folder / "media", folder),
                capture_output=True,
                text=True,
                timeout=120,
            )
            if proc.returncode != 0:
                raise RuntimeError(f"drfsite migrate failed:\n{proc.stdout}\n{proc.stderr}")
            _template_db = db
        return _template_db


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class DrfServer:
    url: str  # API root, e.g. "http://127.0.0.1:40123/api"
    token: str  # user alice
    other_token: str  # user bob
    media_root: Path
    port: int
    log_path: Path
    _env: dict[str, str] = field(repr=False)
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _log: IO[bytes] | None = field(default=None, repr=False)

    def auth(self, token: str | None = None) -> dict[str, str]:
        """Headers authenticating as alice (or as the owner of ``token``)."""
        return {"Synapse-Access-Token": f"Token {token or self.token}"}

    def upload_path(self, upload_id: str) -> Path:
        """The stored file of an upload (``<id>.part`` or ``<id>.done``)."""
        for ext in (".part", ".done"):
            found = sorted(self.media_root.rglob(f"{upload_id}{ext}"))
            if found:
                return found[0]
        raise FileNotFoundError(f"no stored file for upload {upload_id} under {self.media_root}")

    def stored_bytes(self, upload_id: str) -> bytes:
        return self.upload_path(upload_id).read_bytes()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start uvicorn (no-op if running) and wait until Django answers."""
        if self.running:
            return
        self._log = self.log_path.open("ab")
        self._proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "tests.conformance.drfsite.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--lifespan",
                "off",
                "--no-access-log",
                "--log-level",
                "warning",
                "--timeout-graceful-shutdown",
                "2",
            ],
            cwd=REPO_ROOT,
            env=self._env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            if self._proc.poll() is not None:
                self._cleanup()
                raise RuntimeError(f"drf server exited on start-up:\n{self.log_tail()}")
            if self._answers():
                return
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"drf server not ready in {STARTUP_TIMEOUT}s:\n{self.log_tail()}"
                )
            time.sleep(0.05)

    def _answers(self) -> bool:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
        try:
            conn.request("GET", "/api/chunked_upload/")
            return conn.getresponse().status == 401
        except OSError:
            return False
        finally:
            conn.close()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if still alive after a deadline."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(STOP_TIMEOUT)
        self._cleanup()

    def kill(self) -> None:
        """Crash the server (SIGKILL): in-flight requests are cut."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(STOP_TIMEOUT)
        self._cleanup()

    def _cleanup(self) -> None:
        self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""


@contextmanager
def run_drf_server(
    tmp: Path, *, expire_seconds: float | None = None, max_bytes: int | None = None
) -> Iterator[DrfServer]:
    """Run a fresh drf-chunked-upload server with its DB and media under ``tmp``."""
    folder = Path(tempfile.mkdtemp(prefix="drfsite-", dir=tmp))
    db = folder / "db.sqlite3"
    shutil.copyfile(template_db(), db)
    media_root = folder / "media"
    media_root.mkdir()
    upload_tmp = folder / "tmp"
    upload_tmp.mkdir()
    env = _base_env(db, media_root, upload_tmp)
    if expire_seconds is not None:
        env["DRFSITE_EXPIRE_SECONDS"] = repr(float(expire_seconds))
    if max_bytes is not None:
        env["DRFSITE_MAX_BYTES"] = str(max_bytes)
    port = _free_port()
    server = DrfServer(
        url=f"http://127.0.0.1:{port}/api",
        token=ALICE_TOKEN,
        other_token=BOB_TOKEN,
        media_root=media_root,
        port=port,
        log_path=folder / "server.log",
        _env=env,
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def drf_server(tmp_path: Path) -> Iterator[DrfServer]:
    """A fresh drf-chunked-upload server with default settings (1 day expiry, no limit)."""
    with run_drf_server(tmp_path) as server:
        yield server
