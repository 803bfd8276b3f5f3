"""One line above the footer, on every tab and layout: active, done/total, rate, ETA."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from textual.widgets import Static

from synapse_tui.ui.widgets.live_text import set_live_text
from synapse_tui.units import format_duration, format_rate

ACTIVE = ("hashing", "uploading", "finalizing", "registering")
LEFT = ("queued", "hashing", "uploading", "finalizing", "registering", "paused")
FILES_WINDOW = 10.0  # files per second over this many seconds
RESUMED_SHOWN = 120.0  # "8 resumed" stays this long after the last resumed job arrived


def format_eta(low: float | None, high: float | None, stalled: bool = False) -> str:
    """`1m20s – 1m40s`, one value when both read the same, `stalled`, or `--`."""
    if stalled:
        return "stalled"
    if low is None and high is None:
        return "--"
    if low is not None and high is not None and format_duration(low) != format_duration(high):
        return f"{format_duration(low)} – {format_duration(high)}"
    return format_duration(low if low is not None else high)


class FilesRate:
    """Files finished per second over the last FILES_WINDOW seconds."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._samples: deque[tuple[float, int]] = deque()

    def add(self, files_done: int) -> None:
        now = self.clock()
        self._samples.append((now, files_done))
        while len(self._samples) > 2 and now - self._samples[0][0] > FILES_WINDOW:
            self._samples.popleft()

    def rate(self) -> float:
        if len(self._samples) < 2:
            return 0.0
        (t0, n0), (t1, n1) = self._samples[0], self._samples[-1]
        now = self.clock()
        span = max(now, t1) - t0
        return (n1 - n0) / span if span >= 1.0 else 0.0


class SummaryBar(Static):
    """`▲ 3 active · 12/40 done · 28 left · 62.1 MiB/s · 41 files/s · ETA 1m20s – 1m40s`.

    Parts are dropped from the right end when the terminal is too narrow for all of them;
    the first four (active, done/total, left, rate) always fit in 80 columns.
    """

    def __init__(self, *, frozen: bool = False, id: str | None = None) -> None:
        super().__init__("", id=id)
        self.frozen = frozen
        self.counts: dict[str, int] = {}
        self.files_total = 0
        self.rate = 0.0
        self.eta: tuple[float | None, float | None] = (None, None)
        self.stalled = False
        self.concurrency = 4
        self.resumed = 0
        self._resumed_at = 0.0
        self.files = FilesRate()
        self._shown = ""

    def on_mount(self) -> None:
        self.paint()
        if not self.frozen:
            self.set_interval(1.0, self.paint)  # the files/s and the resumed note age

    def note_resumed(self, n: int) -> None:
        self.resumed += n
        self._resumed_at = time.monotonic()

    def parts(self) -> list[tuple[int, str]]:
        """(priority, text): the parts with the highest priority number go first when
        the line is too long; active, done/total, rate and ETA always stay."""
        c = self.counts
        active = sum(c.get(s, 0) for s in ACTIVE)
        left = sum(c.get(s, 0) for s in LEFT)
        out = [
            (0, f"▲ {active} active"),
            (0, f"{c.get('done', 0)}/{self.files_total} done"),
            (2, f"{left} left"),
            (0, format_rate(self.rate) if self.rate > 0 and not self.frozen else "0 B/s"),
        ]
        files = self.files.rate()
        if files >= 1.0 and not self.frozen:  # small files: their count says more than bytes
            out.append((1, f"{files:.0f} files/s"))
        out.append((0, "ETA " + format_eta(*self.eta, stalled=self.stalled)))
        if c.get("failed"):
            out.append((1, f"{c['failed']} failed"))
        if c.get("paused"):
            out.append((3, f"{c['paused']} paused"))
        if self.resumed and time.monotonic() - self._resumed_at < RESUMED_SHOWN:
            out.append((1, f"{self.resumed} resumed"))
        out.append((4, f"×{self.concurrency} at once"))
        return out

    def text(self, width: int | None = None) -> str:
        parts = self.parts()
        room = (width if width is not None else self.size.width) or 10**6
        while True:
            line = " · ".join(text for _, text in parts)
            worst = max(priority for priority, _ in parts)
            if len(line) <= room or worst == 0:
                return line
            drop = max(i for i, (priority, _) in enumerate(parts) if priority == worst)
            del parts[drop]

    def paint(self) -> None:
        text = self.text()
        if set_live_text(self, self._shown, text):
            self._shown = text
