"""The live progress pane: scan status, overall bar, throughput, counts and limits."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import VerticalScroll

from synapse_tui.ui.widgets.job_counts import JobCounts
from synapse_tui.ui.widgets.overall_progress import OverallProgress
from synapse_tui.ui.widgets.scan_status import ScanStatus
from synapse_tui.ui.widgets.throughput import Throughput


class ProgressPanel(VerticalScroll, can_focus=True):
    """Groups the live progress widgets; focusable so `tab` reaches it at 80x24."""

    def __init__(self, *, frozen: bool = False, id: str | None = None) -> None:
        super().__init__(id=id)
        self.frozen = frozen

    def compose(self) -> ComposeResult:
        yield ScanStatus(id="scan")
        yield OverallProgress(id="overall")
        yield Throughput(frozen=self.frozen, id="throughput")
        yield JobCounts(id="counts")
