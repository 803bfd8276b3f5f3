"""A blank `--proxy` (spaces: "the environment's", as `Proxies` reads it) sends the
command's own proxy variables to an idle engine it reconfigures, as no `--proxy` does."""

from __future__ import annotations

from typing import Any

import pytest

from synapse_tui.config import Settings
from synapse_tui.engine.credentials import Credentials
from synapse_tui.engine.proxy import routing_table
from synapse_tui.service import front
from synapse_tui.service.spawn import fingerprint, proxy_id
from synapse_tui.service.wire import Command, Configure

HOST = "http://127.0.0.1:1"


class IdleEngine:
    """An idle engine's client end: its status, and the commands sent to it."""

    def __init__(self, settings: Settings) -> None:
        self.sent: list[Command] = []
        self.status: dict[str, Any] = {
            "host": HOST,
            "credentials": fingerprint(settings.credentials),
            "proxy": proxy_id("off"),  # started where no proxy was set
            "active": 0,
            "queued": 0,
            "clients": 1,
        }

    async def request(self, command: Command, **_: Any) -> dict[str, Any]:
        self.sent.append(command)
        return self.status


@pytest.mark.parametrize("blank", [None, " "])
async def test_a_blank_proxy_sends_the_commands_proxy_variables(
    blank: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "REQUEST_METHOD"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://user:pw@127.0.0.1:3128")
    settings = Settings(host=HOST, credentials=Credentials(access_token="t0ken"), proxy=blank)
    engine = IdleEngine(settings)
    await front._adopt(engine, settings)  # type: ignore[arg-type]
    [sent] = engine.sent
    assert isinstance(sent, Configure)
    # The engine routes by what it is sent: "" and this command's variables (on r6integ a
    # blank proxy went as " " without them: the engine kept its own environment's).
    assert (sent.proxy, sent.proxy_env) == ("", routing_table(None))
    assert sent.proxy_env == {"https_proxy": "http://user:pw@127.0.0.1:3128"}
