"""Quitting while the background engine uploads: keep uploading, or pause and quit."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label

KEEP, PAUSE, STAY = "keep", "pause", "stay"


class QuitScreen(ModalScreen[str]):
    """`k`/`enter` keeps uploading in the background (focused), `p` pauses everything
    and quits, `escape` stays."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("k", "answer('keep')", "Keep uploading"),
        Binding("p", "answer('pause')", "Pause and quit"),
        Binding("escape,n", "answer('stay')", "Stay"),
        Binding("left,h", "app.focus_previous", "Previous", show=False),
        Binding("right,l", "app.focus_next", "Next", show=False),
    ]

    def __init__(self, active: int) -> None:
        super().__init__()
        self.active = active

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="dialog"):
            yield Label("Uploads are running. Quit?", classes="dialog-title")
            yield Label(
                f"{self.active} upload(s) active. The engine can keep uploading in the "
                "background; `synapse-tui` or `synapse-tui attach` shows them again.",
                classes="dialog-hint",
            )
            with Horizontal(classes="dialog-buttons"):
                yield Button("Keep uploading (k)", id=KEEP, variant="primary")
                yield Button("Pause all, quit (p)", id=PAUSE, variant="error")
                yield Button("Stay (esc)", id=STAY)

    def on_mount(self) -> None:
        self.query_one(f"#{KEEP}", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(str(event.button.id))

    def action_answer(self, choice: str) -> None:
        self.dismiss(choice)
