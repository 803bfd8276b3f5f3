"""The main screen: file browser, job queue, live progress and event log, keyboard only."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, ClassVar, cast

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Container
from textual.events import Resize
from textual.screen import Screen
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import Footer

from synapse_tui.engine.collections import CollectionPlan
from synapse_tui.engine.errors import SynapseError, UploadGone
from synapse_tui.engine.events import (
    BackendState,
    FatalStop,
    JobDone,
    JobFailed,
    JobQueued,
    JobSkipped,
    ScanProgress,
    TotalProgress,
)
from synapse_tui.engine.names import absolute, display_path
from synapse_tui.ui.collection_choice import describe_plan
from synapse_tui.ui.messages import EngineUpdate
from synapse_tui.ui.screens.job_actions import JobActions
from synapse_tui.ui.widgets.backend_banner import BackendBanner
from synapse_tui.ui.widgets.collection_target import CollectionTarget
from synapse_tui.ui.widgets.event_log import EventLog
from synapse_tui.ui.widgets.file_browser import FileBrowser
from synapse_tui.ui.widgets.job_counts import JobCounts
from synapse_tui.ui.widgets.job_queue import JobQueue
from synapse_tui.ui.widgets.overall_progress import OverallProgress
from synapse_tui.ui.widgets.pane_tabs import PANES, PaneTabs
from synapse_tui.ui.widgets.progress_panel import ProgressPanel
from synapse_tui.ui.widgets.scan_status import ScanStatus
from synapse_tui.ui.widgets.summary_bar import LEFT, SummaryBar
from synapse_tui.ui.widgets.throughput import Throughput

if TYPE_CHECKING:
    from synapse_tui.ui.app import SynapseApp

PANE_IDS = [pane for pane, _ in PANES]
# From this width up to the wide layout the footer leaves out `^p palette`: docked at the
# right, it covered the last key (`? Keys` read `? Ke` in the file browser at 80x24). Below
# it the keys overflow anyway, and the docked key ends the line cleanly. ctrl+p still opens
# the palette; `?` lists it.
PALETTE_KEY_HIDDEN = (70, 110)
LEDGER_EVERY = 1.0  # seconds: files finished within it get their ✓ from one ledger read


class DashboardScreen(JobActions, Screen[None]):
    """Three panes and a log; below 110 columns one pane at a time behind a tab strip."""

    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]  # noqa: RUF012

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("tab", "next_pane", "Next pane", show=False, priority=True),
        Binding("shift+tab", "previous_pane", "Previous pane", show=False, priority=True),
        Binding("1", "show_pane('browser')", "Files", show=False),
        Binding("2", "show_pane('queue')", "Queue", show=False),
        Binding("3", "show_pane('progress')", "Progress", show=False),
        Binding("4", "show_pane('log')", "Log", show=False),
        Binding("u", "queue_marked", "Upload", show=True),
        Binding("p", "pause_job", "Pause", show=True),
        Binding("P", "pause_all", "Pause all", show=False),
        Binding("x", "cancel_job", "Cancel", show=True),
        Binding("X", "cancel_all", "Cancel all", show=False),
        Binding("r", "retry_failed", "Retry now", show=True),
        Binding("d", "drain", "Drain", show=False),
        # Not + / -: those mark by glob in the file browser. These work from every pane.
        Binding("greater_than_sign", "concurrency(1)", "More at once", show=False),
        Binding("less_than_sign", "concurrency(-1)", "Fewer at once", show=False),
        Binding("b", "bandwidth", "Bandwidth", show=False),
        Binding("c", "choose_collection", "Collection", show=False),
        Binding("s", "app.settings", "Settings", show=False),
        Binding("f5", "reload", "Reload files", show=False),
    ]

    def __init__(self, directory: bytes, *, frozen: bool = False) -> None:
        super().__init__()
        self.directory = absolute(directory)
        self.frozen = frozen
        self.current_pane = "browser"
        self._concurrency = 4
        self.bwlimit: float | None = None
        self.draining = False
        self.skipped_scan = 0
        self._ledger_timer: Timer | None = None
        self.failed_scan = 0
        self.plan: CollectionPlan | None = None
        """The data collection the next `u` registers uploads in (None: plain uploads)."""

    @property
    def concurrency(self) -> int:
        """Uploads at once, as asked of the engine."""
        return self._concurrency

    @concurrency.setter
    def concurrency(self, n: int) -> None:
        self._concurrency = n
        for summary in self.query(SummaryBar):
            summary.concurrency = n
            summary.paint()

    @property
    def synapse(self) -> SynapseApp:
        return cast("SynapseApp", self.app)

    def compose(self) -> ComposeResult:
        yield BackendBanner(id="banner")
        yield CollectionTarget(id="collection-target")
        yield PaneTabs(id="tabs")
        with Container(id="panes"):
            browser = FileBrowser(self.directory, id="browser")
            root_name = display_path(
                os.path.basename(self.directory) if self.frozen else self.directory
            )
            browser.border_title = f"Files · {root_name}"
            yield browser
            queue = JobQueue(display_path(self.directory), id="queue")
            queue.border_title = "Queue"
            yield queue
            progress = ProgressPanel(frozen=self.frozen, id="progress")
            progress.border_title = "Progress"
            yield progress
            log = EventLog(display_path(self.directory), frozen=self.frozen, id="log")
            log.border_title = "Events"
            yield log
        yield SummaryBar(frozen=self.frozen, id="summary")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.browser.focus()
        self._show(self.current_pane)

    def on_resize(self, event: Resize) -> None:
        low, high = PALETTE_KEY_HIDDEN
        self.query_one(Footer).show_command_palette = not low <= event.size.width < high

    # -- parts ------------------------------------------------------------------------------

    @property
    def browser(self) -> FileBrowser:
        return self.query_one(FileBrowser)

    @property
    def queue(self) -> JobQueue:
        return self.query_one(JobQueue)

    @property
    def log_widget(self) -> EventLog:
        return self.query_one(EventLog)

    @property
    def counts(self) -> JobCounts:
        return self.query_one(JobCounts)

    @property
    def summary(self) -> SummaryBar:
        return self.query_one(SummaryBar)

    # -- panes ------------------------------------------------------------------------------

    def _show(self, pane: str) -> None:
        self.current_pane = pane
        for pane_id in PANE_IDS:
            self.query_one(f"#{pane_id}").set_class(pane_id == pane, "-current")
        self.query_one(PaneTabs).current = pane

    def action_show_pane(self, pane: str) -> None:
        self._show(pane)
        self.query_one(f"#{pane}", Widget).focus()

    def _step_pane(self, step: int) -> None:
        focused = self.focused
        current = self.current_pane
        if focused is not None and focused.id in PANE_IDS:
            current = focused.id
        index = (PANE_IDS.index(current) + step) % len(PANE_IDS)
        self.action_show_pane(PANE_IDS[index])

    def action_next_pane(self) -> None:
        self._step_pane(1)

    def action_previous_pane(self) -> None:
        self._step_pane(-1)

    def on_descendant_focus(self) -> None:
        focused = self.focused
        if focused is not None and focused.id in PANE_IDS and focused.id != self.current_pane:
            self._show(focused.id)

    # -- engine updates ---------------------------------------------------------------------

    def apply(self, update: EngineUpdate) -> None:
        """Fold a batch of engine events into every pane."""
        self.queue.apply(update.events, update.views)
        log = self.log_widget
        counts = self.counts
        summary = self.summary
        refresh_ledger = False
        states = self.queue.counts()
        log.record_all(update.events)
        for event in update.events:
            if isinstance(event, TotalProgress):
                left = sum(states.get(s, 0) for s in LEFT)
                self.query_one(OverallProgress).update_totals(
                    event.bytes_done,
                    event.bytes_total,
                    event.files_done,
                    event.files_total,
                    left,
                )
                self.query_one(Throughput).update_rate(event.rate)
                summary.files_total = event.files_total
                summary.files.add(event.files_done)
                summary.stalled = counts.stalled = event.stalled  # no clock in it: frozen too
                if not self.frozen:
                    summary.rate = event.rate
                    summary.eta = (event.eta_low, event.eta_high)
                    counts.eta = (event.eta_low, event.eta_high)
            elif isinstance(event, BackendState):
                self.query_one(BackendBanner).health = event
            elif isinstance(event, JobQueued) and event.resumed:
                summary.note_resumed(1)
            elif isinstance(event, ScanProgress):
                self.query_one(ScanStatus).show(event)
            elif isinstance(event, JobSkipped) and event.job_id is None:
                self.skipped_scan += 1
            elif isinstance(event, JobFailed) and event.job_id is None:
                self.failed_scan += 1
            elif isinstance(event, JobDone):
                refresh_ledger = True
            elif isinstance(event, FatalStop):
                self.notify(event.error, title="Uploads stopped", severity="error")
                self.query_one(BackendBanner).status = "STOPPED"
        counts.counts = states  # the queue took the whole batch before the loop
        counts.skipped_scan = self.skipped_scan
        counts.failed_scan = self.failed_scan
        summary.counts = states
        summary.files_total = max(summary.files_total, sum(states.values()))
        summary.paint()
        if refresh_ledger and self._ledger_timer is None:
            # One ledger read a second for the files that finished, not one per batch (a
            # thread and a worker eight times a second with small files).
            self._ledger_timer = self.set_timer(LEDGER_EVERY, self._ledger_due)

    def _ledger_due(self) -> None:
        self._ledger_timer = None
        self.refresh_ledger()

    @work(group="ledger", exclusive=True, exit_on_error=False)
    async def refresh_ledger(self) -> None:
        bridge = self.synapse.bridge
        if bridge is None or not bridge.running:
            return
        # Only the files the browser lists: a million uploads are no set in memory here.
        uploaded = await bridge.uploaded_paths(self.browser.listed_files())
        if uploaded != self.browser.uploaded:
            self.browser.uploaded = uploaded
            self.browser._marks_changed()

    # -- actions ----------------------------------------------------------------------------

    def action_queue_marked(self) -> None:
        bridge = self.synapse.bridge
        targets = self.browser.targets()
        if not targets:
            self.notify("nothing to queue", severity="warning")
            return
        later = ""
        if bridge is not None:
            bridge.queue_paths(targets, plan=self.plan)
        elif self.synapse.waiting is not None:  # the engine starts: they go when it is ready
            self.synapse.waiting.append((targets, self.plan))
            later = " (when the engine is ready)"
        else:
            self.notify("the engine is not running", severity="warning")
            return
        n = len(targets)
        what = display_path(os.path.basename(targets[0])) if n == 1 else f"{n} entries"
        where = f" {describe_plan(self.plan)}" if self.plan is not None else ""
        self.log_widget.add("info", f"queued {what}{where}{later}")
        self.browser.clear_marks()

    @work(group="collections", exclusive=True, exit_on_error=False)
    async def action_choose_collection(self) -> None:
        """List the backend's collections (in the engine thread), then ask which one."""
        from synapse_tui.ui.screens.collection import CollectionScreen

        bridge = self.synapse.bridge
        if bridge is None or not bridge.running:
            self.notify("the engine is not running", severity="warning")
            return
        try:
            collections = await bridge.collections()
        except UploadGone:
            self.notify(
                "This backend has no data collections (data_collections/ answered 404); "
                "uploads stay plain.",
                title="No data collections",
                severity="warning",
                timeout=8,
            )
            return
        except SynapseError as exc:
            self.notify(f"cannot list data collections: {exc}", severity="error")
            return
        if not collections:
            self.notify(
                "The backend lists no data collections; uploads stay plain.",
                title="No data collections",
                severity="warning",
                timeout=8,
            )
            return
        screen = CollectionScreen(collections, self.plan, self.browser.extensions())
        choice = await self.app.push_screen_wait(screen)
        if choice is not None:
            self.set_plan(choice.plan)

    def set_plan(self, plan: CollectionPlan | None) -> None:
        self.plan = plan
        self.query_one(CollectionTarget).plan = plan
        self.log_widget.add("info", f"next uploads {describe_plan(plan)}")

    def action_reload(self) -> None:
        self.browser.reload()

    @on(FileBrowser.Listed)
    def folder_listed(self) -> None:
        self.refresh_ledger()

    @on(JobQueue.OpenJob)
    def open_job(self, event: JobQueue.OpenJob) -> None:
        self.synapse.show_job(event.job_id)
