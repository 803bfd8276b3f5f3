"""Every key of the dashboard, grouped by where it works."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import Label, Static

from synapse_tui.ui.screens.reading import ReadingScreen

KEYS: list[tuple[str, list[tuple[str, str]]]] = [
    (
        "Everywhere",
        [
            ("tab / shift+tab", "next / previous pane"),
            ("1 2 3 4", "files, queue, progress, log pane"),
            ("u", "queue the marked entries (or the highlighted one)"),
            ("p", "pause / resume the highlighted job"),
            ("P", "pause all jobs / resume all"),
            ("x", "cancel the highlighted job (asks first once it sent data: y confirms)"),
            ("X", "cancel every unfinished job (asks once)"),
            ("r", "retry now: failed jobs again, and jobs waiting out a backoff"),
            ("d", "drain: finish in-flight uploads, start nothing new (again: undo)"),
            ("> / <", "more / fewer uploads at once"),
            ("b", "set the bandwidth limit"),
            ("c", "choose the data collection for the next queued files"),
            ("s", "backend settings: host, token, tenant"),
            ("t", "next theme"),
            ("ctrl+p", "command palette: every action"),
            ("?", "this help"),
            (
                "q / ctrl+c",
                "quit; while uploads run, asks: keep uploading in the background (k),"
                " pause all and quit (p), or stay (esc) (--foreground: they pause and"
                " resume on the next launch)",
            ),
        ],
    ),
    (
        "File browser",
        [
            ("↑ ↓ / j k", "move"),
            ("enter", "open / close a folder"),
            ("→ l / ← h", "expand / collapse (or go to parent)"),
            ("space", "mark or unmark, then move down"),
            ("+ / -", "mark / unmark by glob in this folder"),
            ("*", "invert the marks in this folder"),
            ("ctrl+a", "mark all in this folder (again: unmark)"),
            ("v", "mark a range: v, move, v"),
            ("/", "filter by name (part of a name or a glob)"),
            (".", "show / hide hidden files"),
            ("esc", "clear the filter, then the marks"),
            ("f5", "re-read folders from disk"),
        ],
    ),
    (
        "Job queue",
        [
            ("↑ ↓ / j k", "move"),
            ("pgup pgdn", "a page up / down"),
            ("home / g", "first job (stops following)"),
            ("end / G", "last job, and follow the uploads again"),
            ("f", "follow the uploads: keep the active rows in view (any move stops it)"),
            ("/", "filter by state: all, active, queued, paused, failed, done (again: next)"),
            ("esc", "every job again"),
            ("enter", "job details: path, upload id, offset, md5, errors (or double click)"),
        ],
    ),
]


def keys_table() -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True, min_width=16)
    table.add_column()
    for section, rows in KEYS:
        table.add_row(f"[u]{section}[/u]", "")
        for key, what in rows:
            table.add_row(key, what)
        table.add_row("", "")
    return table


class HelpScreen(ReadingScreen):
    """`escape`, `q` or `?` closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "close", "Close"),
    ]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="dialog", classes="dialog wide-dialog"):
            yield Label("Keys", classes="dialog-title")
            yield Static(keys_table(), id="keys")
            yield Label("esc: close", classes="dialog-hint")

    def action_close(self) -> None:
        self.dismiss(None)
