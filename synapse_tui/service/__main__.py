"""`python -m synapse_tui.service`: the engine process a front end starts (not for users)."""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import logging
import os
import signal
import sys
import time
from pathlib import Path

from synapse_tui import paths
from synapse_tui.config import redact
from synapse_tui.service.daemon import EngineService, Lifetime, ServiceOptions
from synapse_tui.service.peer import PeerLimits
from synapse_tui.service.spawn import (
    ENGINE_LOCK,
    EXIT_ALREADY,
    UnsafeStateFile,
    open_state_file,
    settings_from_env,
)


def take_engine_lock(state: Path, wait: float) -> int | None:
    """The lock only a live engine holds (the kernel drops it when the process dies, so a
    socket left by a SIGKILLed engine is known stale). Waits up to `wait` seconds for an
    engine that is stopping."""
    fd = open_state_file(state / ENGINE_LOCK, os.O_RDWR | os.O_CREAT)
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() > deadline:
                os.close(fd)
                return None
            time.sleep(0.05)
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


class _Redact(logging.Filter):
    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage(), self.secrets)
        record.args = None
        return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m synapse_tui.service")
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--idle-timeout", type=float, default=300.0)
    parser.add_argument("--local-backend", action="store_true")
    parser.add_argument("--client-timeout", type=float, default=20.0)
    args = parser.parse_args(argv)
    settings = settings_from_env()
    os.umask(0o077)
    state = paths.private_dir(Path(args.state_dir))
    settings.state_dir = state
    # An SSH drop or a closed terminal is none of the engine's business (it has its own
    # session already); Ctrl-C in the terminal that started it neither.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_Redact(settings.credentials.secrets()))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    try:
        lock = take_engine_lock(state, wait=15.0)
    except UnsafeStateFile as exc:
        logging.getLogger("synapse_tui.service").error("%s", exc)
        return 1
    if lock is None:
        logging.getLogger("synapse_tui.service").error("another engine serves %s", state)
        return EXIT_ALREADY
    options = ServiceOptions(
        lifetime=Lifetime(idle_timeout=args.idle_timeout),
        limits=PeerLimits(write_timeout=args.client_timeout),
        local_backend=args.local_backend,
    )
    service = EngineService(settings, options)

    async def serve() -> int:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, service.request_stop, "SIGTERM")
        return await service.run()

    try:
        return asyncio.run(serve())
    finally:
        os.close(lock)


if __name__ == "__main__":
    raise SystemExit(main())
