"""The engine process: one per state folder, its journal, its manager, a Unix socket."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synapse_tui.config import Settings
from synapse_tui.engine.credentials import Credentials
from synapse_tui.engine.errors import ConfigError, FatalError, JournalFailed, SynapseError
from synapse_tui.engine.events import JobState
from synapse_tui.engine.factory import make_client, make_manager
from synapse_tui.engine.journal import Journal
from synapse_tui.engine.scheduler import UploadManager
from synapse_tui.service import commands
from synapse_tui.service.peer import Peer, PeerLimits, same_user
from synapse_tui.service.routing import Router
from synapse_tui.service.spawn import SOCKET_NAME, fingerprint, proxy_id, socket_address
from synapse_tui.service.store import EngineStore
from synapse_tui.service.wire import (
    VERSION,
    Command,
    Hello,
    WireError,
    command_from_wire,
    decode,
    refusal,
    reply,
)

log = logging.getLogger("synapse_tui.service")


@dataclass
class Lifetime:
    """When the engine leaves on its own."""

    idle_timeout: float = 300.0  # no job, no client, after a dashboard was attached
    headless_grace: float = 1.0  # no job, no client, only headless commands ever came
    first_client: float = 15.0  # started, and nobody connected yet
    stop_grace: float = 5.0  # stop / quit: in-flight chunks get this long to finish


@dataclass
class ServiceOptions:
    lifetime: Lifetime = field(default_factory=Lifetime)
    limits: PeerLimits = field(default_factory=PeerLimits)
    local_backend: bool = False


class EngineService:
    """Serves clients on `<state>/engine.sock` until it stops or has been idle long enough."""

    def __init__(self, settings: Settings, options: ServiceOptions) -> None:
        self.settings = settings
        self.options = options
        self.state_dir = Path(settings.state_dir)
        self.socket_path = self.state_dir / SOCKET_NAME
        self.router = Router()
        self.manager: UploadManager | None = None
        self.journal: Journal | None = None
        self.store: EngineStore | None = None
        self.local_server: Any = None
        self.started = time.time()
        self.interactive = False  # a dashboard came: idle exit waits `idle_timeout`
        self.clients_seen = 0
        self.reached = False
        self.stopping: str | None = None
        self._exit = asyncio.Event()
        self._numbers = 0
        self._server: asyncio.AbstractServer | None = None
        self._address = contextlib.ExitStack()

    # -- start and stop ---------------------------------------------------------------------

    async def run(self) -> int:
        if self.options.local_backend and not self.settings.host:
            from synapse_tui.ui.local_backend import start_local_backend

            self.local_server, url, token = await asyncio.to_thread(start_local_backend)
            self.settings.host = url
            self.settings.credentials = Credentials(access_token=token)
            self.interactive = True
        # Off the loop: opening waits for SQLite's locks (a new settings table, another
        # process switching a new journal to WAL), up to their busy timeouts.
        self.journal = await asyncio.to_thread(Journal, self.state_dir)
        self.store = await asyncio.to_thread(EngineStore, self.journal.path)
        if self.settings.host:
            self.build_manager()
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()  # a dead engine's: we hold the engine lock
        # A deep state folder binds through /proc/self/fd/N/, the folder held open (N)
        # for the server's life.
        address = self._address.enter_context(socket_address(self.state_dir))
        self._server = await asyncio.start_unix_server(
            self._serve, path=address, limit=commands.MAX_READ
        )
        os.chmod(self.socket_path, 0o600)
        log.info(
            "engine %s serving %s (host %s)", os.getpid(), self.socket_path, self.settings.host
        )
        lifetime = asyncio.create_task(self._lifetime(), name="lifetime")
        await self._exit.wait()
        lifetime.cancel()
        await self._shutdown()
        return 0

    def build_manager(self) -> None:
        assert self.journal is not None and self.store is not None
        saved = self.store.settings()
        if isinstance(saved.get("concurrency"), int):
            self.settings.concurrency = max(1, min(64, saved["concurrency"]))
        if "bwlimit" in saved:
            bw = saved["bwlimit"]
            self.settings.bwlimit = float(bw) if isinstance(bw, int | float) and bw > 0 else None
        manager = make_manager(
            self.settings, [self.router], make_client(self.settings), self.journal
        )
        manager.draining = bool(saved.get("draining", False))
        manager.on_held = self.router.adopt
        manager.start()
        self.manager = self.router.manager = manager
        self.reached = False

    def request_stop(self, reason: str) -> None:
        if self.stopping is None:
            self.stopping = reason
            log.info("stopping: %s", reason)
            self._exit.set()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        self._address.close()
        await self.quiesce(f"paused: {self.stopping or 'the engine stopped'}")
        for batch in list(self.router.batches.values()):
            self.router.finish(batch, stopped=self.stopping or "the engine stopped")
        peers = list(self.router.peers)
        await asyncio.gather(*(p.flush_and_close() for p in peers), return_exceptions=True)
        if self.journal is not None:
            try:
                self.journal.close()  # bounded: Journal.CLOSE_PATIENCE
            except JournalFailed as exc:
                log.error("%s", exc)
        if self.store is not None:
            self.store.close()
        if self.local_server is not None:
            await asyncio.to_thread(self.local_server.stop)

    async def quiesce(self, message: str) -> None:
        """Start nothing new; in-flight files stop at their next chunk boundary when that
        comes within `stop_grace` (nothing thrown away), else are cut; then close."""
        m = self.manager
        if m is None:
            return
        m.draining = True
        for job in m.active():
            m.pause(job.id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.options.lifetime.stop_grace
        while m.active() and loop.time() < deadline:
            await asyncio.sleep(0.05)
        await m.close(message)

    def working(self) -> bool:
        """A job runs or will start, or a scan runs."""
        if any(b.task is not None and not b.task.done() for b in self.router.batches.values()):
            return True
        return self.manager is not None and not self.manager.is_idle()

    async def _lifetime(self) -> None:
        idle_since: float | None = None
        loop = asyncio.get_running_loop()
        life = self.options.lifetime
        was_working = False
        while True:
            await asyncio.sleep(0.2)
            commands.rotate_log_if_big(self.state_dir)
            working = self.working()
            if was_working and not working:
                for peer in self.router.peers:
                    if peer.subscribed:
                        peer.send({"event": "engine_idle"})
            was_working = working
            if working or self.router.peers:
                idle_since = None
                continue
            now = loop.time()
            idle_since = idle_since if idle_since is not None else now
            limit = life.idle_timeout if self.interactive else life.headless_grace
            if not self.clients_seen:
                limit = max(limit, life.first_client)
            if now - idle_since >= limit:
                self.request_stop("idle: no job and no client")
                return

    # -- clients ----------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not same_user(writer):
            log.warning("refused a client of another user")
            writer.transport.abort()
            return
        self._numbers += 1
        peer = Peer(self._numbers, reader, writer, self.options.limits)
        self.clients_seen += 1
        self.router.peers.add(peer)
        try:
            await self._read_loop(peer)
        finally:
            self.router.peer_gone(peer)
            peer.close()

    async def _read_loop(self, peer: Peer) -> None:
        greeted = False
        while not peer.closed.is_set():
            try:
                line = await peer.reader.readline()
            except (ValueError, asyncio.LimitOverrunError):
                peer.drop("a line over the limit")
                return
            except (ConnectionError, OSError):
                return
            if not line:
                return
            try:
                request_id, command = command_from_wire(decode(line))
            except WireError as exc:
                peer.send(refusal(-1, f"protocol error: {exc}"))
                await peer.flush_and_close()
                return
            if not greeted:
                if not isinstance(command, Hello) or command.version != VERSION:
                    peer.send(refusal(request_id, f"this engine speaks version {VERSION}"))
                    await peer.flush_and_close()
                    return
                greeted = True
                peer.role = command.role
                if command.role == "dashboard" and not self.interactive:
                    # Keys first: as the dashboard's upload threads did, the engine runs
                    # `upload_nice` levels below it once a dashboard uses it.
                    commands.renice(self.settings.upload_nice)
                self.interactive = self.interactive or command.role == "dashboard"
                peer.send(reply(request_id, **self.status()))
                continue
            await self._handle(peer, request_id, command)

    async def _handle(self, peer: Peer, request_id: int, command: Command) -> None:
        try:
            result = await commands.handle(self, peer, command)
        except ConfigError as exc:
            peer.send(refusal(request_id, str(exc), "config"))
        except commands.Gone as exc:
            peer.send(refusal(request_id, self.clean(str(exc)), "gone"))
        except (FatalError, SynapseError) as exc:
            peer.send(refusal(request_id, self.clean(str(exc)), "config"))
        except Exception as exc:  # one command failing must not take the engine down
            log.exception("command %s failed", command.NAME)
            peer.send(refusal(request_id, self.clean(f"{type(exc).__name__}: {exc}")))
        else:
            peer.send(reply(request_id, **result))

    def clean(self, text: str) -> str:
        from synapse_tui.config import redact

        return redact(text, self.settings.credentials.secrets())

    # -- what a client sees first -----------------------------------------------------------

    def status(self) -> dict[str, Any]:
        m = self.manager
        counts = self.router.last_totals.counts if self.router.last_totals else {}
        active = len(m.active()) if m is not None else 0
        return {
            "engine": "synapse-tui",
            "version": VERSION,
            # What this engine takes that an older one of the same VERSION would ignore.
            "features": ["filters"],
            "pid": os.getpid(),
            "started": self.started,
            "host": self.settings.host,
            "local": self.local_server is not None,
            "clients": len(self.router.peers),
            "active": active,
            "queued": (counts.get(JobState.QUEUED.value, 0) if m is not None else 0),
            "jobs": m.counters.files if m is not None else 0,
            "counts": counts,
            "concurrency": m.options.concurrency if m is not None else self.settings.concurrency,
            "bwlimit": m.options.bwlimit if m is not None else self.settings.bwlimit,
            "draining": bool(m.draining) if m is not None else False,
            "stopped": m.stopped if m is not None else None,
            "idle_timeout": self.options.lifetime.idle_timeout,
            "idle": not self.working(),
            "credentials": fingerprint(self.settings.credentials),
            "proxy": proxy_id(self.settings.proxy, self.settings.proxy_env),
            # Compared by a command that names one (engine_settings.py); none is a secret.
            "strategy": self.settings.strategy,
            "retries": self.settings.retries,
            "insecure": self.settings.insecure,
            "ca_bundle": self.settings.ca_bundle,
        }
