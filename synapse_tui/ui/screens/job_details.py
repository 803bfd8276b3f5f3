"""A job's details: path, upload id, server offset, md5 and every error with its time."""

from __future__ import annotations

import time
from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import Label, Static

from synapse_tui.engine.names import escape_text
from synapse_tui.ui.messages import JobDetails
from synapse_tui.ui.screens.reading import ReadingScreen
from synapse_tui.units import format_size


def retries(d: JobDetails) -> str:
    """Failed attempts since the job last made progress (the count resets on progress)."""
    if d.state == "done":
        return "—"
    if not d.attempts:
        return "none since the last progress"
    return f"{d.attempts} failed attempt{'s' if d.attempts != 1 else ''} since the last progress"


def details_table(d: JobDetails) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    pct = 100.0 * d.offset / d.size if d.size else 100.0
    rows = [
        ("Job", str(d.job_id)),
        ("Path", d.path),
        ("State", d.state),
        ("Size", f"{format_size(d.size)} ({d.size} bytes)"),
        ("Server offset", f"{format_size(d.offset)} ({d.offset} bytes, {pct:.1f}%)"),
        ("Upload id", d.upload_id or "—"),
        ("Upload URL", d.upload_url or "—"),
        ("MD5", d.md5 or "—"),
        ("Retries", retries(d)),
        ("Resumed from", format_size(d.resumed_from) if d.resumed_from else "—"),
        ("Last error", escape_text(d.last_error) if d.last_error else "—"),
    ]
    if d.collection is not None:
        rows += [
            ("Collection", str(d.collection)),
            ("Spec", d.spec or "—"),
            ("Data file id", "—" if d.data_file_id is None else str(d.data_file_id)),
            ("Data unit id", "—" if d.unit_id is None else str(d.unit_id)),
        ]
    for key, value in rows:
        table.add_row(key, Text(value))
    return table


def errors_table(d: JobDetails) -> Table | Text:
    if not d.errors:
        return Text("No errors recorded.", style="dim")
    table = Table.grid(padding=(0, 2))
    table.add_column(no_wrap=True, style="dim")
    table.add_column()
    for at, message in d.errors:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))
        table.add_row(stamp, Text(escape_text(message)))
    return table


class JobDetailsScreen(ReadingScreen):
    """Read-only; `escape`, `q` or `enter` closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,enter", "dismiss_screen", "Close"),
    ]

    def __init__(self, details: JobDetails) -> None:
        super().__init__()
        self.details = details

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="dialog", classes="dialog wide-dialog"):
            yield Label(f"Job {self.details.job_id}", classes="dialog-title")
            yield Static(details_table(self.details), id="job-fields")
            yield Label("Errors", classes="dialog-section")
            yield Static(errors_table(self.details), id="job-errors")
            yield Label("esc: close", classes="dialog-hint")

    def action_dismiss_screen(self) -> None:
        self.dismiss(None)
