"""An `upload` with --include/--exclude that the running engine refuses (an older engine,
without the "filters" feature) is refused before it changes anything in that engine: its
-j and --bwlimit do not stay behind in an engine that goes on with other uploads."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from synapse_tui.cli import build_parser, settings_from
from synapse_tui.config import load_settings
from synapse_tui.engine.errors import ConfigError
from synapse_tui.headless import make_reporter
from synapse_tui.service import front
from synapse_tui.service.daemon import EngineService, ServiceOptions
from tests.harness.embedded import EmbeddedServer
from tests.harness.lock_holder import until


async def test_a_command_refused_for_its_filters_leaves_the_engine_as_it_was(
    embedded_server: EmbeddedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state"
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.jpg").write_bytes(b"photo")
    real_status = EngineService.status

    def older(self: EngineService) -> dict[str, Any]:  # as an engine of before the feature
        status = real_status(self)
        status.pop("features")
        return status

    monkeypatch.setattr(EngineService, "status", older)
    common = ["--host", embedded_server.url, "--token", embedded_server.token]
    engine_settings = load_settings(
        {"host": embedded_server.url, "access_token": embedded_server.token, "state_dir": state}
    )
    service = EngineService(engine_settings, ServiceOptions())
    running = asyncio.create_task(service.run())
    try:
        await until(lambda: service.manager is not None, 30, "the engine's manager")
        assert service.manager is not None
        before = (service.manager.options.concurrency, service.manager.options.bwlimit)
        argv = ["upload", str(data), "-j", "16", "--bwlimit", "1M", "--exclude", "*.tmp"]
        args = build_parser("upload").parse_args([*argv, *common, "--state-dir", str(state)])
        reporter = make_reporter(True, [], False)
        with pytest.raises(ConfigError, match="older than --include/--exclude"):
            await front._follow(settings_from(args), args, reporter)
        after = (service.manager.options.concurrency, service.manager.options.bwlimit)
        assert after == before
    finally:
        service.request_stop("test")
        assert await asyncio.wait_for(running, 30) == 0
