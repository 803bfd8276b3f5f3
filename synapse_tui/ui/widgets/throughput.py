"""Throughput over the last minutes: a sparkline with the current, average and peak rate."""

from __future__ import annotations

import time
from collections import deque

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Label, Sparkline

from synapse_tui.ui.widgets.live_text import set_live_text
from synapse_tui.units import format_rate

HISTORY = 180  # one sample a second: the last three minutes


class Throughput(Vertical):
    """Samples the batch rate once a second; repaints only when a sample changes the picture."""

    def __init__(self, *, frozen: bool = False, id: str | None = None) -> None:
        super().__init__(id=id)
        self.frozen = frozen
        self.samples: deque[float] = deque([0.0] * HISTORY, maxlen=HISTORY)
        self.rate = 0.0
        self.peak = 0.0
        self._sum = 0.0
        self._active_seconds = 0
        self._updated = 0.0
        self._shown = ""

    def compose(self) -> ComposeResult:
        yield Sparkline(list(self.samples), summary_function=max, id="spark")
        yield Label("", id="rate-text")

    def on_mount(self) -> None:
        self._paint_text()
        if not self.frozen:
            self.set_interval(1.0, self._sample)

    def update_rate(self, rate: float) -> None:
        if self.frozen:
            return
        self.rate = rate
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
            self.peak = max(self.peak, rate)
        self.query_one(Sparkline).data = list(self.samples)
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
