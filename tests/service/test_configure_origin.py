"""The engine's token goes only to its host: a `configure` naming another host and no
credentials is refused, and the new host never sees the old host's token."""

from __future__ import annotations

import asyncio
import socket
import threading
from pathlib import Path

import pytest

from synapse_tui.config import Settings
from synapse_tui.engine.credentials import Credentials
from synapse_tui.service.client import Refused, connect
from synapse_tui.service.wire import Configure, Stop
from tests.service.conftest import Env, engine_pid, wait_for


class Recorder:
    """Another HTTP server on loopback: keeps every byte sent to it, answers 200 `{}`."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.received = b""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    self.received += conn.recv(65536)
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
                except OSError:
                    pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


def test_configure_to_another_host_without_credentials_keeps_the_token_home(
    engine_env: Env, tmp_path: Path
) -> None:
    token = engine_env.server.token
    settings = Settings(
        host=engine_env.server.url,
        credentials=Credentials(access_token=token),
        state_dir=engine_env.state,
    )
    other = Recorder()

    async def scenario() -> None:
        client = await connect(settings, "dashboard")
        try:
            with pytest.raises(Refused) as refused:
                await client.request(Configure(other.url))
            assert refused.value.kind == "config"
            assert (await client.request(Stop())) is not None
        finally:
            await client.close()

    try:
        asyncio.run(scenario())
        wait_for(lambda: engine_pid(engine_env.state) is None, what="the engine to exit")
    finally:
        other.close()
    assert token.encode() not in other.received
