"""Job counts by state, the ETA range, and the limits in force."""

from __future__ import annotations

from textual.reactive import reactive
from textual.widgets import Static

from synapse_tui.ui.widgets.live_text import set_live_text
from synapse_tui.ui.widgets.summary_bar import format_eta
from synapse_tui.units import format_rate

ACTIVE = ("hashing", "uploading", "finalizing", "registering")


class JobCounts(Static):
    """`queued 3 · active 4 · done 10 · failed 0 · skipped 2` and the limits line."""

    counts: reactive[dict[str, int]] = reactive(dict, init=False, always_update=True)
    """Jobs per engine state."""
    skipped_scan: reactive[int] = reactive(0, init=False)
    """Files the pre-scan skipped (duplicates, already uploaded, special files)."""
    failed_scan: reactive[int] = reactive(0, init=False)
    """Files the pre-scan could not read."""
    concurrency: reactive[int] = reactive(4, init=False)
    """Uploads at once, as in force in the engine."""
    bwlimit: reactive[float | None] = reactive(None, init=False)
    """The bandwidth limit in force (None: unlimited)."""
    draining: reactive[bool] = reactive(False, init=False)
    """Finishing what is in flight, starting nothing new."""
    eta: reactive[tuple[float | None, float | None]] = reactive((None, None), init=False)
    """The ETA range (low, high) in seconds."""
    stalled: reactive[bool] = reactive(False, init=False)
    """Jobs run but no byte moved for longer than usual."""

    _shown = ""

    def on_mount(self) -> None:
        self._paint()

    def watch_counts(self) -> None:
        self._paint()

    def _watch_any(self) -> None:
        self._paint()

    def _paint(self) -> None:
        text = self.text()
        if set_live_text(self, self._shown, text):  # skips repaints the eye would not see
            self._shown = text

    watch_skipped_scan = watch_failed_scan = watch_concurrency = watch_bwlimit = watch_draining = (
        _watch_any
    )
    watch_eta = watch_stalled = _watch_any

    def text(self) -> str:
        c = self.counts
        active = sum(c.get(s, 0) for s in ACTIVE)
        skipped = c.get("skipped", 0) + self.skipped_scan
        eta = format_eta(*self.eta, stalled=self.stalled)
        parts = [f"queued {c.get('queued', 0)}", f"active {active}"]
        if c.get("registering"):
            parts.append(f"registering {c['registering']}")
        if c.get("paused"):
            parts.append(f"paused {c['paused']}")
        failed = c.get("failed", 0) + self.failed_scan
        parts += [f"done {c.get('done', 0)}", f"failed {failed}"]
        parts.append(f"skipped {skipped}")
        if c.get("cancelled"):
            parts.append(f"cancelled {c['cancelled']}")
        line1 = " · ".join(parts)
        mode = " · DRAINING" if self.draining else ""
        line2 = (
            f"ETA {eta} · concurrency {self.concurrency} · limit {format_rate(self.bwlimit)}{mode}"
        )
        return f"{line1}\n{line2}"
