"""A front end talks only to an engine of its own user: another user's socket in the state
folder (a shared or world-writable one) never gets a Hello, let alone a Configure's token."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import pytest

from synapse_tui.config import Settings
from synapse_tui.engine.credentials import Credentials
from synapse_tui.service.client import EngineUnavailable, connect

NOBODY = 65534


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to listen as another user")
def test_an_engine_socket_of_another_user_is_never_spoken_to(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    os.chmod(state, 0o1777)  # world-writable and sticky, as /tmp
    ready_r, ready_w = os.pipe()
    got_r, got_w = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the other user's fake engine
        os.close(ready_r)
        os.close(got_r)
        got = b""
        try:
            os.chdir(state)  # as root: the test's folders above are 0700
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as srv:
                srv.bind("engine.sock")
                os.chmod("engine.sock", 0o777)
                srv.listen(1)
                os.write(ready_w, b"1")
                srv.settimeout(10)
                conn, _ = srv.accept()
                with conn:
                    conn.settimeout(3)
                    try:
                        got = conn.recv(4096)
                        if got:  # answer as an engine would, then take what comes next
                            conn.sendall(b'{"reply":1,"ok":true,"host":"http://elsewhere"}\n')
                            got += conn.recv(4096)
                    except (TimeoutError, OSError):
                        pass
        finally:
            os.write(got_w, got or b"-")
            os._exit(0)
    os.close(ready_w)
    os.close(got_w)
    try:
        assert os.read(ready_r, 1) == b"1"
        settings = Settings()
        settings.state_dir = state
        settings.host = "http://127.0.0.1:9"
        settings.credentials = Credentials(access_token="secret-token-of-the-user")
        with pytest.raises(EngineUnavailable, match="another user"):
            asyncio.run(connect(settings, "upload", start=False))
        got = os.read(got_r, 65536)
    finally:
        os.waitpid(child, 0)
        os.close(ready_r)
        os.close(got_r)
    assert got == b"-", got  # connected, and not one byte sent to it
