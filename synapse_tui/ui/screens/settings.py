"""Backend settings: host, token and tenant, saved to synapse-tui's own config file (0600)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label

from synapse_tui.config import Settings, own_config_file, save_own_config


def pretty_path(path: Path) -> str:
    """`~/...` for paths in the home folder."""
    home = str(Path.home())
    text = str(path)
    return "~" + text[len(home) :] if text.startswith(home + "/") else text


UNCHANGED = "(unchanged: type to replace)"


class SettingsScreen(ModalScreen[bool]):
    """Secrets are never shown back: their fields start empty and masked.

    Dismisses with True when something was saved.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+s", "save", "Save"),
    ]

    def __init__(self, settings: Settings, local: bool = False) -> None:
        super().__init__()
        self.settings = settings
        self.local = local
        self.saved: dict[str, str | None] = {}  # what was saved (read by the app)

    def compose(self) -> ComposeResult:
        creds = self.settings.credentials
        host = "" if self.local else (self.settings.host or "")
        with Vertical(id="dialog", classes="dialog"):
            yield Label("Backend settings", classes="dialog-title")
            yield Label("Host (API root URL; empty: the local backend)")
            yield Input(value=host, placeholder="https://synapse.example.org", id="host")
            yield Label("Access token")
            yield Input(
                password=True,
                placeholder=UNCHANGED if creds.access_token else "token",
                id="token",
            )
            yield Label("Tenant (optional)")
            yield Input(
                password=True,
                placeholder=UNCHANGED if creds.tenant else "tenant",
                id="tenant",
            )
            yield Label(
                f"Saved to {pretty_path(own_config_file())} (0600); used from the next launch.",
                classes="dialog-hint",
            )
            with Horizontal(classes="dialog-buttons"):
                yield Button("Save (ctrl+s)", id="save", variant="primary")
                yield Button("Cancel (esc)", id="cancel")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "save":
            self.action_save()
        else:
            self.action_cancel()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.focus_next()

    def action_cancel(self) -> None:
        self.dismiss(False)

    def action_save(self) -> None:
        host = self.query_one("#host", Input).value.strip().rstrip("/")
        token = self.query_one("#token", Input).value.strip()
        tenant = self.query_one("#tenant", Input).value.strip()
        if host and not host.startswith(("http://", "https://")):
            self.notify("host must start with http:// or https://", severity="error")
            self.query_one("#host", Input).focus()
            return
        values: dict[str, str | None] = {"host": host or None}
        if token:
            values["access_token"] = token
        if tenant:
            values["tenant"] = tenant
        try:
            path = save_own_config(values)
        except OSError as exc:
            self.notify(f"cannot save: {exc}", severity="error")
            return
        self.saved = values
        self.notify(
            f"saved to {path}; used from the next launch, or now if uploads were stopped",
            title="Settings",
        )
        self.dismiss(True)
