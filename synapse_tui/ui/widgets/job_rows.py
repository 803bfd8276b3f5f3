"""The job queue's rows: what each job shows (state, name, size, progress, speed, ETA, try)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip

from synapse_tui.units import format_duration, format_rate, format_size

STATE_LABELS = {
    "queued": ("· queued", "foreground"),
    "hashing": ("# hashing", "secondary"),
    "uploading": ("▲ upload", "primary"),
    "finalizing": ("◆ final", "primary"),
    "registering": ("◇ regist", "accent"),
    "paused": ("‖ paused", "warning"),
    "done": ("✓ done", "success"),
    "skipped": ("- skip", "foreground"),
    "failed": ("✗ failed", "error"),
    "cancelled": ("⊘ cancel", "foreground"),
    # not engine states: what the row says while the engine has not caught up
    "pausing": ("‖ pausing…", "warning"),
    "retrying": ("↻ retry", "warning"),
}
ACTIVE = ("hashing", "uploading", "finalizing", "registering")
COLUMNS = ("State", "Name", "Size", "Progress", "Speed", "ETA", "Try")
# Fixed widths so live values never get cropped; the name takes what is left.
WIDTHS = (10, 0, 9, 10, 10, 7, 3)
RIGHT = (False, False, True, False, True, True, True)  # right-justified columns
SPAN = "\x00"  # a cell holding this is covered by the cell before it (retry notes)
# Below this many cells for the name, Progress shows the percentage only (no bar).
BAR_MIN_NAME = 30
# An uploading job with no progress for this long (or 3x its usual gap between updates)
# shows "stalled" instead of a stale rate.
STALE_AFTER = 5.0


@dataclass
class JobRow:
    """The queue's own record of a job, fed by engine events."""

    job_id: int
    path: str
    size: int
    state: str = "queued"
    sent: int = 0
    rate: float = 0.0
    eta: float | None = None
    attempts: int = 0
    error: str | None = None
    pausing: bool = False  # `p` pressed; the engine pauses at the end of the current piece
    retry: tuple[int, int, float] | None = None  # attempt, budget, when (monotonic)
    progress_at: float = 0.0  # when the last progress arrived (monotonic)
    gap: float = 0.0  # the usual time between two progress updates (a low limit: long)

    def moved(self, now: float) -> None:
        """Bytes moved at `now`: note it, and how long such a move usually takes."""
        if self.progress_at:
            gap = now - self.progress_at
            self.gap = gap if not self.gap else 0.7 * self.gap + 0.3 * gap
        self.progress_at = now

    def stalled(self, now: float) -> bool:
        """Uploading, yet no progress for longer than usual."""
        limit = max(STALE_AFTER, 3 * self.gap)
        return (
            self.state == "uploading" and bool(self.progress_at) and now - self.progress_at > limit
        )


def progress_bar(done: int, total: int, width: int = 5) -> str:
    fraction = 1.0 if total <= 0 else max(0.0, min(1.0, done / total))
    filled = round(fraction * width)
    return "█" * filled + "░" * (width - filled) + f"{fraction * 100:4.0f}%"


def percent(done: int, total: int) -> str:
    fraction = 1.0 if total <= 0 else max(0.0, min(1.0, done / total))
    return f"{fraction * 100:4.0f}%"


def fit(text: str, width: int, right: bool = False) -> str:
    """`text` padded (or cropped) to exactly `width` cells."""
    n = cell_len(text)
    if n >= width:
        return set_cell_size(text, width)
    pad = " " * (width - n)
    return pad + text if right else text + pad


def fixed_width(bar: bool = True) -> int:
    """Cells taken by every column but the name (one space before each column)."""
    widths = list(WIDTHS)
    if not bar:
        widths[3] = 5
    return sum(widths) + len(COLUMNS) + 1


def column_widths(width: int) -> tuple[int, ...]:
    """The widths of the columns in a queue `width` cells wide: the name gets the rest."""
    name = width - fixed_width(bar=True)
    if name >= BAR_MIN_NAME:
        return (WIDTHS[0], name, *WIDTHS[2:])
    name = max(10, width - fixed_width(bar=False))
    return (WIDTHS[0], name, WIDTHS[2], 5, *WIDTHS[4:])


def short_rate(rate: float) -> str:
    """`12.3MiB/s`: a rate that fits the Speed column."""
    return format_rate(rate).replace(" ", "")


def state_key(row: JobRow) -> str:
    """The STATE_LABELS key the row shows (its engine state, or pausing / retrying)."""
    if row.pausing and row.state not in ("paused", "done", "failed", "cancelled", "skipped"):
        return "pausing"
    if row.retry is not None and row.state in ACTIVE:
        return "retrying"
    return row.state


def plain_cells(row: JobRow, name: str, widths: tuple[int, ...], now: float) -> tuple[str, ...]:
    """The row's cells as text for columns `widths` wide, at monotonic time `now`."""
    name_width = widths[1]
    if cell_len(name) > name_width:
        name = "…" + name[-(name_width - 1) :]
    key = state_key(row)
    label = STATE_LABELS.get(key, (row.state, "foreground"))[0]
    done = row.size if row.state == "done" else row.sent
    progress = progress_bar(done, row.size) if widths[3] >= 10 else percent(done, row.size)
    tries = str(row.attempts) if row.attempts else ""
    speed, eta = "", ""
    if key == "retrying" and row.retry is not None:
        attempt, budget, when = row.retry
        left = when - now
        speed = f"retry {attempt}/{budget} " + (
            f"in {format_duration(left)}" if left > 0.5 else "now"
        )
        eta = SPAN
    elif key == "pausing":
        pass  # the label says it; a rate would say it still runs
    elif row.stalled(now):
        speed = "stalled"
    elif row.state in ACTIVE:
        speed = short_rate(row.rate) if row.rate > 0 else ""
        eta = format_duration(row.eta) if row.eta else ""
    return (label, name, format_size(row.size), progress, speed, eta, tries)


def line_strip(cells: Sequence[str], styles: Sequence[Style], base: Style, width: int) -> Strip:
    """One line of the queue: the cells at their column widths, one space before each."""
    widths = column_widths(width)
    segments = []
    for i, (cell, style, right) in enumerate(zip(cells, styles, RIGHT, strict=True)):
        if cell == SPAN:
            continue
        wide = widths[i]
        if i + 1 < len(cells) and cells[i + 1] == SPAN:  # the next cell is this one's
            wide += 1 + widths[i + 1]
        segments.append(Segment(" " + fit(cell, wide, right), base + style))
    return Strip(segments).crop_extend(0, width, base)


def monotonic() -> float:
    return time.monotonic()
