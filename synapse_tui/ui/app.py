"""The dashboard application and `run_dashboard`, the entry point the CLI calls."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.theme import Theme

from synapse_tui.config import Settings, redact, save_own_config
from synapse_tui.engine.collections import CollectionPlan
from synapse_tui.engine.errors import ConfigError
from synapse_tui.engine.names import absolute
from synapse_tui.engine.protocol import Credentials
from synapse_tui.service import engine_settings
from synapse_tui.service.spawn import fingerprint
from synapse_tui.ui.bridge import EngineBridge, ManagerFactory, default_factory
from synapse_tui.ui.heap import freeze_startup, thaw
from synapse_tui.ui.messages import EngineError, EngineStarted, EngineUpdate
from synapse_tui.ui.screens.dashboard import DashboardScreen
from synapse_tui.ui.service_bridge import ServiceBridge
from synapse_tui.ui.themes import DEFAULT_THEME, automatic_theme, load_themes
from synapse_tui.ui.widgets.job_queue import JobQueue

STYLES = Path(__file__).parent / "styles"

# Every action, for the command palette: (title, help, action on the dashboard or app).
COMMANDS: list[tuple[str, str, str]] = [
    ("Upload marked", "Queue the marked entries (or the highlighted one)  u", "queue_marked"),
    ("Pause / resume job", "Pause or resume the highlighted job  p", "pause_job"),
    ("Pause / resume all", "Pause every job, or resume them all  P", "pause_all"),
    ("Cancel job", "Cancel the highlighted job (asks once it sent data)  x", "cancel_job"),
    ("Cancel all", "Cancel every unfinished job (asks once)  X", "cancel_all"),
    ("Retry now", "Queue failed jobs again, end running backoffs now  r", "retry_failed"),
    ("Drain", "Finish in-flight uploads, start nothing new (toggle)  d", "drain"),
    ("More uploads at once", "One more upload at once, from any pane  >", "concurrency(1)"),
    ("Fewer uploads at once", "One upload fewer at once, from any pane  <", "concurrency(-1)"),
    ("Bandwidth limit", "Set the bandwidth limit  b", "bandwidth"),
    (
        "Choose data collection",
        "Register the next uploads in a data collection (spec, meta)  c",
        "choose_collection",
    ),
    ("Reload files", "Re-read the folders from disk  f5", "reload"),
    ("Files pane", "Show the file browser  1", "show_pane('browser')"),
    ("Queue pane", "Show the job queue  2", "show_pane('queue')"),
    ("Progress pane", "Show live progress  3", "show_pane('progress')"),
    ("Log pane", "Show the event log  4", "show_pane('log')"),
]


class SynapseApp(App[int]):
    """The synapse-tui dashboard. Drives the engine only through `self.bridge`."""

    TITLE = "synapse-tui"
    CSS_PATH = [STYLES / "app.tcss", STYLES / "dialogs.tcss"]  # noqa: RUF012
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit_dashboard", "Quit", show=True),
        Binding("question_mark", "help", "Keys", show=True),
        Binding("t", "cycle_theme", "Theme", show=False),
        Binding("ctrl+c", "quit_dashboard", "Quit", show=False, priority=True),
    ]

    def __init__(
        self,
        settings: Settings,
        directory: str | bytes = ".",
        *,
        local: bool = False,
        factory: ManagerFactory = default_factory,
        frozen: bool = False,
        progress_interval: float = 0.25,
        start_engine: bool = True,
        service: bool = False,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.directory = absolute(os.fsencode(directory))  # `link/..` as the kernel names it
        self.local = local
        self.factory = factory
        self.frozen = frozen
        self.progress_interval = progress_interval
        self.start_engine = start_engine
        self.service = service  # the engine is the background process, not a thread
        self.bridge: EngineBridge | ServiceBridge | None = None
        self.left_running: dict[str, Any] | None = None  # the engine status when we left it
        self.theme_errors: list[str] = []
        self.theme_names: list[str] = []
        self.dashboard = DashboardScreen(self.directory, frozen=frozen)
        self.exit_code = 0
        # Entries queued while the engine starts (a list) go to it once it is ready.
        self.waiting: list[tuple[list[bytes], CollectionPlan | None]] | None = None

    # -- start ------------------------------------------------------------------------------

    async def on_mount(self) -> None:
        self._register_themes()
        await self.push_screen(self.dashboard)
        banner = self.dashboard.query_one("#banner")
        host = self.settings.host or ""
        if self.frozen:  # snapshots: the port changes from run to run
            host = re.sub(r":\d+", ":PORT", host)
        banner.host = host  # type: ignore[attr-defined]
        banner.local = self.local  # type: ignore[attr-defined]
        self.dashboard.concurrency = self.settings.concurrency
        self.dashboard.bwlimit = self.settings.bwlimit
        self.dashboard.counts.concurrency = self.settings.concurrency
        self.dashboard.counts.bwlimit = self.settings.bwlimit
        for error in self.theme_errors:
            self.notify(error, title="Theme not loaded", severity="error", timeout=10)
        if self.start_engine and self.service:
            self.waiting = []
            self.run_worker(self._start_service(), group="engine", exit_on_error=False)
        elif self.start_engine:
            self._start_bridge()
        freeze_startup()  # the collector's full passes skip start-up's objects (ui/heap.py)

    def _register_themes(self) -> None:
        themes, self.theme_errors = load_themes()
        for theme in themes:
            self.register_theme(theme)
        self.theme_names = [t.name for t in themes]
        wanted = self.settings.theme or automatic_theme(os.environ)
        if wanted not in self.available_themes:
            if self.settings.theme:
                self.theme_errors.append(f"theme {wanted!r} not found; using {DEFAULT_THEME}")
            wanted = DEFAULT_THEME if DEFAULT_THEME in self.available_themes else "textual-dark"
        self.theme = wanted
        self.settings.theme = wanted  # in memory: only a change by the user is saved
        self.theme_changed_signal.subscribe(self, self._theme_changed)

    def _theme_changed(self, theme: Theme) -> None:
        if theme.name != self.settings.theme:
            self.settings.theme = theme.name
            self._save_theme(theme.name)

    @work(thread=True, group="config", exit_on_error=False)
    def _save_theme(self, name: str) -> None:
        save_own_config({"theme": name})

    def _start_bridge(self) -> None:
        self.bridge, error = self._launch_bridge()
        if error is not None:
            self._engine_not_started(error)
        elif self.bridge is not None:
            self.dashboard.queue.attach(self.bridge.window)

    def _launch_bridge(self) -> tuple[EngineBridge | None, str | None]:
        """A started bridge, or the one-line reason it did not start (waits for the engine
        thread: call it from a worker thread once the app runs)."""
        bridge = EngineBridge(
            self, self.settings, factory=self.factory, progress_interval=self.progress_interval
        )
        try:
            bridge.start()
        except Exception as exc:
            return None, redact(str(exc), self.settings.credentials.secrets())
        return bridge, None

    def _engine_not_started(self, message: str) -> None:
        self.notify(message, title="Engine not started", severity="error", timeout=30)
        self.dashboard.log_widget.add("error", f"engine not started: {message}")

    async def _start_service(self) -> None:
        """Attach to the engine of the state folder (started when none runs); with no
        backend configured, the engine hosts the local one, so its uploads outlive us."""
        from synapse_tui.service.front import since

        bridge = ServiceBridge(
            self,
            self.settings,
            progress_interval=self.progress_interval,
            local_backend=self.settings.host is None,
        )
        wanted = self.settings.host  # the bridge takes the engine's host into settings
        try:
            await bridge.start()
        except Exception as exc:
            message = redact(str(exc), self.settings.credentials.secrets())
            self.notify(message, title="Engine not started", severity="error", timeout=30)
            self.dashboard.log_widget.add("error", f"engine not started: {message}")
            self._drop_waiting()
            return
        self.bridge = bridge
        self.dashboard.queue.attach(bridge.window)
        status = bridge.status
        engine_host = status.get("host") or ""
        if wanted and engine_host and engine_host != wanted:
            # One engine per state folder: it keeps the backend it was started for.
            text = (
                f"the engine of this state folder uploads to {engine_host}, not"
                f" {wanted}: stop it (`synapse-tui engine stop`) or use another"
                " --state-dir"
            )
            self.notify(text, title="Another backend", severity="warning", timeout=15)
            self.dashboard.log_widget.add("warning", text)
        elif (other := engine_settings.attach_warning(status, self.settings)) is not None:
            self.notify(other, title="Other settings", severity="warning", timeout=15)
            self.dashboard.log_widget.add("warning", other)
        banner = self.dashboard.query_one("#banner")
        self.local = bool(status.get("local"))
        banner.host = status.get("host") or ""  # type: ignore[attr-defined]
        banner.local = self.local  # type: ignore[attr-defined]
        banner.engine = f"engine {status.get('pid')}, runs on when you quit"  # type: ignore[attr-defined]
        if status.get("stopped"):  # a 401/403 stopped it before we came: settings fix it
            banner.status = "STOPPED"  # type: ignore[attr-defined]
            self.dashboard.log_widget.add("error", f"uploads stopped: {status['stopped']}")
        for name in ("concurrency", "bwlimit"):  # the engine's, which may be a keyboard's
            setattr(self.dashboard, name, status.get(name))
            setattr(self.dashboard.counts, name, status.get(name))
        if not bridge.started_here:
            text = f"attached to {since(status)}"
            self.notify(text, title="Background engine", timeout=8)
            self.dashboard.log_widget.add("info", text)
        bridge.resume_journal()
        self._send_waiting(bridge)

    def _send_waiting(self, bridge: EngineBridge | ServiceBridge) -> None:
        waiting, self.waiting = self.waiting or [], None
        for targets, plan in waiting:
            bridge.queue_paths(targets, plan=plan)

    def _drop_waiting(self) -> None:
        waiting, self.waiting = self.waiting or [], None
        if waiting:
            n = sum(len(targets) for targets, _ in waiting)
            lost = f"{n} entr{'y' if n == 1 else 'ies'} not queued: the engine did not start"
            self.dashboard.log_widget.add("error", lost)

    # -- engine messages --------------------------------------------------------------------

    def on_engine_update(self, message: EngineUpdate) -> None:
        if self.dashboard.is_mounted:
            # The panes never go while the app runs; at its end they may go before the
            # last batches do.
            with contextlib.suppress(NoMatches):
                self.dashboard.apply(message)

    def on_engine_started(self, message: EngineStarted) -> None:
        if message.resumed:
            self.dashboard.log_widget.add(
                "info", f"{message.resumed} unfinished job(s) from the journal resume"
            )
        self.dashboard.refresh_ledger()

    def on_engine_error(self, message: EngineError) -> None:
        error = redact(message.error, self.settings.credentials.secrets())
        self.notify(error, severity="error")
        self.dashboard.log_widget.add("error", error)

    # -- actions ----------------------------------------------------------------------------

    def action_help(self) -> None:
        from synapse_tui.ui.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_settings(self) -> None:
        from synapse_tui.ui.screens.settings import SettingsScreen

        screen = SettingsScreen(self.settings, local=self.local)
        self.push_screen(screen, lambda saved: self._settings_saved(bool(saved), screen.saved))

    def _settings_saved(self, saved: bool, values: dict[str, str | None]) -> None:
        """With the background engine, saved settings apply at once: the engine is told
        (the one time the token crosses the socket, given by this client). In-thread,
        after a fatal stop (a refused token...), they start a new engine: the stopped
        one never starts anything again."""
        bridge = self.bridge
        if isinstance(bridge, ServiceBridge):
            if saved:
                before = (self.settings.host, self.settings.credentials)
                self._take_settings(values)
                self.run_worker(self._reconfigure(before), group="engine", exit_on_error=False)
            return
        if not saved or not self.start_engine or (bridge is not None and not bridge.stopped):
            return
        self._take_settings(values)
        self._restart_engine()

    def _take_settings(self, values: dict[str, str | None]) -> None:
        creds = self.settings.credentials
        if values.get("host") and not self.local:
            self.settings.host = values["host"]
        self.settings.credentials = Credentials(
            access_token=values.get("access_token") or creds.access_token,
            user_token=creds.user_token,
            tenant=values.get("tenant") or creds.tenant,
        )

    async def _reconfigure(self, before: tuple[str | None, Credentials]) -> None:
        """Tell the engine; the header then shows the backend the engine keeps, which is
        the old one when it refused (its reason is in the event log already)."""
        assert isinstance(self.bridge, ServiceBridge)
        took = await self.bridge.configure(self.settings)
        status = self.bridge.status if took else await self.bridge.engine_status()
        if not took and status.get("credentials") == fingerprint(before[1]):
            self.settings.credentials = before[1]  # the engine kept the ones it had
        if status.get("host"):
            self.settings.host = status["host"]
        elif not took:
            self.settings.host = before[0]
        banner = self.dashboard.query_one("#banner")
        banner.host = self.settings.host or ""  # type: ignore[attr-defined]
        if took:
            banner.status = ""  # type: ignore[attr-defined]
            self.dashboard.log_widget.add("info", "the engine took the new settings")
        else:
            kept = self.settings.host or "no backend"
            self.dashboard.log_widget.add("warning", f"the engine keeps {kept}")

    @work(group="engine", exclusive=True, exit_on_error=False)
    async def _restart_engine(self) -> None:
        if self.waiting is None:  # a restart asked again keeps what the first one holds
            self.waiting = []
        await self.shutdown_engine()  # the stopped engine: its jobs are paused, resumable
        bridge, error = await asyncio.to_thread(self._launch_bridge)
        if error is not None:
            self._engine_not_started(error)
            self._drop_waiting()
            return
        self.bridge = bridge
        if bridge is not None:
            self.dashboard.queue.attach(bridge.window)
            self._send_waiting(bridge)
        banner = self.dashboard.query_one("#banner")
        banner.status = ""  # type: ignore[attr-defined]
        banner.host = self.settings.host or ""  # type: ignore[attr-defined]
        self.dashboard.log_widget.add("info", "engine started again with the new settings")

    def action_cycle_theme(self) -> None:
        names = self.theme_names or list(self.available_themes)
        index = names.index(self.theme) + 1 if self.theme in names else 0
        self.theme = names[index % len(names)]
        # No toast per press (twenty presses covered the panes): the colours change where
        # the eye already is, and the event log says which theme it is.
        self.dashboard.log_widget.add("info", f"theme {self.theme}")

    @work(group="details", exclusive=True, exit_on_error=False)
    async def show_job(self, job_id: int) -> None:
        from synapse_tui.ui.screens.job_details import JobDetailsScreen

        if self.bridge is None:
            return
        details = await self.bridge.job_details(job_id)
        if details is None:
            self.notify(f"job {job_id} is gone", severity="warning")
            return
        await self.push_screen(JobDetailsScreen(details))

    @work(group="quit", exclusive=True, exit_on_error=False)
    async def action_quit_dashboard(self) -> None:
        from synapse_tui.ui.screens.confirm import ConfirmScreen

        bridge = self.bridge
        if isinstance(bridge, ServiceBridge):
            await self._quit_service(bridge)
            return
        if bridge is not None and bridge.running and await bridge.busy():
            sure = await self.push_screen_wait(
                ConfirmScreen(
                    "Uploads are running. Quit?",
                    "They are paused now and resume on the next launch.",
                    yes="Quit",
                    no="Stay",
                )
            )
            if not sure:
                return
        await self.shutdown_engine()
        self.exit(self.exit_code)

    async def _quit_service(self, bridge: ServiceBridge) -> None:
        """Keep uploading in the background (the default while jobs run), or pause
        everything and quit."""
        from synapse_tui.ui.screens.quit import KEEP, PAUSE, QuitScreen

        status = await bridge.engine_status() if bridge.running else {}
        if status and not status.get("idle", True):
            choice = await self.push_screen_wait(QuitScreen(int(status.get("active", 0))))
            if choice not in (KEEP, PAUSE):
                return
            if choice == PAUSE:
                await bridge.pause_everything()
            else:
                self.left_running = status
        await self.shutdown_engine()
        self.exit(self.exit_code)

    async def shutdown_engine(self) -> None:
        bridge, self.bridge = self.bridge, None
        if bridge is not None:
            for queue in self.dashboard.query(JobQueue):  # none once unmounted
                queue.attach(None)  # the rows shown stay; nobody to ask
        if isinstance(bridge, ServiceBridge):
            await bridge.aclose()  # only this client goes: the engine runs on
        elif bridge is not None:
            await asyncio.to_thread(bridge.stop)

    async def on_unmount(self) -> None:
        thaw()
        await self.shutdown_engine()

    async def action_quit(self) -> None:
        await self.shutdown_engine()
        self.exit(self.exit_code)

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        if not isinstance(screen, DashboardScreen):
            return
        for title, help_text, action in COMMANDS:
            yield SystemCommand(title, help_text, _runner(screen, action))
        yield SystemCommand("Settings", "Backend host, token and tenant  s", self.action_settings)
        yield SystemCommand("Next theme", "Cycle the synapse themes  t", self.action_cycle_theme)
        yield SystemCommand("Help", "Every key of the dashboard, by pane  ?", self.action_help)
        yield SystemCommand(
            "Quit dashboard",
            "Quit; running uploads resume next launch  q",
            self.action_quit_dashboard,
        )


def _runner(screen: Screen[Any], action: str) -> Any:
    async def run() -> None:
        await screen.run_action(action)

    return run


def local_settings(settings: Settings, url: str, token: str) -> Settings:
    settings.host = url
    settings.credentials = Credentials(access_token=token)
    settings.sources["host"] = "local backend"
    return settings


def run_dashboard(settings: Settings, directory: str, foreground: bool = False) -> int:
    """Open the dashboard in `directory`, attached to the background engine (started if
    none runs); `foreground`: the engine (and the local backend when no host is set) run
    in this process, as before the engine service."""
    from synapse_tui.service.spawn import foreground_requested

    if not os.path.isdir(directory):
        raise ConfigError(f"not a folder: {directory}")
    if not (foreground or foreground_requested()):
        return _run_attached(settings, directory)
    server = None
    local = False
    if settings.host is None:
        from synapse_tui.ui.local_backend import start_local_backend

        try:
            server, url, token = start_local_backend()
        except Exception as exc:
            raise ConfigError(f"cannot start the local backend: {exc}") from exc
        local_settings(settings, url, token)
        local = True
    app = SynapseApp(settings, directory, local=local)
    try:
        result = app.run()
    finally:
        if app.bridge is not None:
            app.bridge.stop()
        if server is not None:
            server.stop()
    if app.return_code:  # Textual caught a crash and printed it: the shell must see it
        return app.return_code
    return result or 0


def _run_attached(settings: Settings, directory: str) -> int:
    import sys

    app = SynapseApp(settings, directory, service=True)
    try:
        result = app.run()
    finally:
        if app.bridge is not None:
            app.bridge.stop()
    if app.return_code:  # Textual caught a crash and printed it: the shell must see it
        return app.return_code
    left = app.left_running
    if left:
        sys.stdout.write(
            f"the engine (pid {left.get('pid')}) keeps uploading in the background; "
            "`synapse-tui` or `synapse-tui attach` follows it\n"
        )
    return result or 0
