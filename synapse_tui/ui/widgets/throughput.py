"""Throughput over the last minutes: a full-width graph with a labelled scale, as btop draws."""

from __future__ import annotations

import time
from collections import deque

from rich.segment import Segment
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.strip import Strip
from textual.widget import Widget
from textual.widgets import Label

from synapse_tui.ui.widgets.live_text import set_live_text
from synapse_tui.units import format_rate

HISTORY = 600  # one sample a second: the last ten minutes (a wide terminal shows them all)
LEVELS = " ▁▂▃▄▅▆▇█"
SCALE_WIDTH = 12  # "999.9MiB/s ┤" on the left of the graph


def short_rate(rate: float) -> str:
    return format_rate(rate).replace(" ", "")


class RateGraph(Widget):
    """Columns of block characters, newest at the right, one per second; the scale on the
    left says what the top row means (the peak in view) and where zero is."""

    DEFAULT_CSS = """
    RateGraph {
        height: 4;
        width: 1fr;
    }
    """
    COMPONENT_CLASSES = {"rate-graph--bar", "rate-graph--scale", "rate-graph--track"}  # noqa: RUF012

    def __init__(self, samples: deque[float], *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.samples = samples

    def render_line(self, y: int) -> Strip:
        width, height = self.size.width, self.size.height
        columns = max(1, width - SCALE_WIDTH)
        shown = list(self.samples)[-columns:]
        shown = [0.0] * (columns - len(shown)) + shown
        top = max(shown) if any(shown) else 0.0
        base = self.rich_style
        bar = base + self.get_component_rich_style("rate-graph--bar")
        scale = base + self.get_component_rich_style("rate-graph--scale")
        track = base + self.get_component_rich_style("rate-graph--track")
        levels = len(LEVELS) - 1
        if y == 0:
            label = short_rate(top) if top > 0 else "idle"
        elif y == height - 1:
            label = "0"
        else:
            label = ""
        segments = [Segment(f"{label:>{SCALE_WIDTH - 2}} ┤", scale)]
        floor = (height - 1 - y) * levels  # eighths below this row
        cells = []
        for value in shown:
            h = round(value / top * height * levels) if top > 0 else 0
            part = max(0, min(levels, h - floor))
            cells.append(LEVELS[part] if part else None)
        # Runs of bars and of empty track, one segment each.
        run: list[str] = []
        run_bar = cells[0] is not None if cells else False
        blank = "·" if y == height - 1 else " "
        for cell in cells:
            is_bar = cell is not None
            if is_bar != run_bar and run:
                segments.append(Segment("".join(run), bar if run_bar else track))
                run = []
            run_bar = is_bar
            run.append(cell if cell is not None else blank)
        if run:
            segments.append(Segment("".join(run), bar if run_bar else track))
        return Strip(segments).crop_extend(0, width, base)


class Throughput(Vertical):
    """Samples the batch rate once a second; repaints only when a sample changes the picture."""

    def __init__(self, *, frozen: bool = False, id: str | None = None) -> None:
        super().__init__(id=id)
        self.frozen = frozen
        self.samples: deque[float] = deque(maxlen=HISTORY)
        self.rate = 0.0
        self.peak = 0.0
        self._sum = 0.0
        self._active_seconds = 0
        self._updated = 0.0
        self._shown = ""

    def compose(self) -> ComposeResult:
        yield RateGraph(self.samples, id="graph")
        yield Label("", id="rate-text")

    def on_mount(self) -> None:
        self._paint_text()
        if not self.frozen:
            self.set_interval(1.0, self._sample)

    def update_rate(self, rate: float) -> None:
        if self.frozen:
            return
        self.rate = rate
        self.peak = max(self.peak, rate)  # a short burst between two samples counts too
        self._updated = time.monotonic()

    def _sample(self) -> None:
        if time.monotonic() - self._updated > 2.0:
            self.rate = 0.0  # no progress events: nothing is moving
        rate = self.rate
        if rate <= 0 and not any(self.samples):
            return  # an idle, flat line stays as it is
        self.samples.append(rate)
        if rate > 0:
            self._active_seconds += 1
            self._sum += rate
        self.query_one(RateGraph).refresh()
        self._paint_text()

    @property
    def average(self) -> float:
        return self._sum / self._active_seconds if self._active_seconds else 0.0

    def _paint_text(self) -> None:
        text = (
            f"now {format_rate(self.rate)} · avg {format_rate(self.average)}"
            f" · peak {format_rate(self.peak)}"
        )
        if set_live_text(self.query_one("#rate-text", Label), self._shown, text):
            self._shown = text
