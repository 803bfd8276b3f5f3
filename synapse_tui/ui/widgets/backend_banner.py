"""The header line: which backend uploads go to (and a loud note when it is a local one)."""

from __future__ import annotations

from textual.reactive import reactive
from textual.widgets import Static


class BackendBanner(Static):
    """`synapse-tui → https://host` or `LOCAL backend (...) — uploads stay on this machine`."""

    host: reactive[str] = reactive("", init=False)
    """The API root uploads go to."""
    local: reactive[bool] = reactive(False, init=False)
    """True when the embedded backend runs in this process."""
    status: reactive[str] = reactive("", init=False)
    """A short state note (paused, draining, stopped)."""
    engine: reactive[str] = reactive("", init=False)
    """Where the engine runs when it is the background one (it outlives the dashboard)."""

    def on_mount(self) -> None:
        self._paint()

    def _paint(self) -> None:
        if self.local:
            text = f"LOCAL backend ({self.host}) — uploads stay on this machine"
        elif self.host:
            text = f"synapse-tui → {self.host}"
        else:
            text = "synapse-tui · no backend"
        if self.engine:
            text += f"  · {self.engine}"
        if self.status:
            text += f"  [{self.status}]"
        self.set_class(self.local, "-local")
        self.update(text)

    def watch_host(self) -> None:
        self._paint()

    def watch_local(self) -> None:
        self._paint()

    def watch_status(self) -> None:
        self._paint()

    def watch_engine(self) -> None:
        self._paint()
