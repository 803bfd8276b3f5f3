"""The header line: which backend uploads go to, whether it answers (and a loud note when
it is a local one)."""

from __future__ import annotations

import re
import time

from textual.reactive import reactive
from textual.widgets import Static

from synapse_tui.engine.events import BackendState
from synapse_tui.engine.names import escape_text

_URL = re.compile(r"https?://([^/\s]+)[^\s:;,)]*")


def describe_health(state: BackendState | None) -> str:
    """`● reachable`, `✗ failing since 14:02:11`, or "" before anything is known (the
    error itself is `failing_error`'s)."""
    if state is None:
        return ""
    if state.ok or state.failing_since is None:
        return "● reachable"
    return f"✗ failing since {time.strftime('%H:%M:%S', time.localtime(state.failing_since))}"


def failing_error(state: BackendState | None) -> str:
    """The backend's error while it fails (escaped), else ""."""
    if state is None or state.ok or state.failing_since is None:
        return ""
    return escape_text(state.error or "no answer")


def short_error(error: str) -> str:
    """The header's form of an error: each URL as its host, so that the cause at the end
    ("Connection refused") fits 80 columns; the event log keeps the error whole."""
    return _URL.sub(r"\1", error)


class BackendBanner(Static):
    """`synapse-tui → https://host  ● reachable` or `LOCAL backend (...) — uploads stay on
    this machine`; red while uploads to the backend fail.

    Failing, it takes a second line for the error: on one line at 80 columns the host and
    "failing since" leave the error a few characters (or none, with the engine's note).
    The state comes before the engine's note, and each line ends in "…" when cut; the event
    log has the error whole."""

    host: reactive[str] = reactive("", init=False)
    """The API root uploads go to."""
    local: reactive[bool] = reactive(False, init=False)
    """True when the embedded backend runs in this process."""
    status: reactive[str] = reactive("", init=False)
    """A short state note (paused, draining, stopped)."""
    health: reactive[BackendState | None] = reactive(None, init=False)
    """The backend's last known state (None: nothing sent yet)."""
    engine: reactive[str] = reactive("", init=False)
    """Where the engine runs when it is the background one (it outlives the dashboard)."""

    def __init__(self, *, id: str | None = None) -> None:
        # Not markup: the host and the backend's error are outside text ("[/x]" in an
        # error raised MarkupError and took the dashboard down), the status note's
        # brackets are meant literally.
        super().__init__(id=id, markup=False)

    def on_mount(self) -> None:
        self._paint()

    def _paint(self) -> None:
        if self.local:
            text = f"LOCAL backend ({self.host}) — uploads stay on this machine"
        elif self.host:
            text = f"synapse-tui → {self.host}"
        else:
            text = "synapse-tui · no backend"
        health = describe_health(self.health)
        if health:
            text += f"  {health}"
        if self.status:
            text += f"  [{self.status}]"
        if self.engine:  # the least needed part: the first one cut
            text += f"  · {self.engine}"
        error = failing_error(self.health)
        if error:
            text += f"\n  {short_error(error)}"
        self.set_class(self.local, "-local")
        self.set_class(bool(error), "-failing")
        self.update(text)

    def watch_host(self) -> None:
        self.health = None  # another backend (the engine restarted): nothing known of it yet
        self._paint()

    def watch_local(self) -> None:
        self._paint()

    def watch_status(self) -> None:
        self._paint()

    def watch_health(self) -> None:
        self._paint()

    def watch_engine(self) -> None:
        self._paint()
