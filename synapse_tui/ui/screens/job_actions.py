"""The dashboard's job actions: pause, cancel (asking first), retry now, drain, limits."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from textual import work
from textual.screen import Screen

from synapse_tui.engine.names import display_path
from synapse_tui.engine.queue_view import ACTIVE_FILTER, MAX_ROWS, Ask
from synapse_tui.ui.widgets.backend_banner import BackendBanner
from synapse_tui.units import format_rate, format_size, parse_rate

if TYPE_CHECKING:
    from synapse_tui.ui.app import SynapseApp
    from synapse_tui.ui.widgets.event_log import EventLog
    from synapse_tui.ui.widgets.job_counts import JobCounts
    from synapse_tui.ui.widgets.job_queue import JobQueue

FINISHED = ("done", "failed", "cancelled", "skipped")

# A plain mixin at run time; mypy sees the Screen it is mixed into.
_Base = Screen[None] if TYPE_CHECKING else object


class JobActions(_Base):  # type: ignore[misc,valid-type]
    """The key actions on jobs and limits, mixed into DashboardScreen."""

    if TYPE_CHECKING:
        draining: bool
        bwlimit: float | None

        @property
        def concurrency(self) -> int: ...
        @concurrency.setter
        def concurrency(self, n: int) -> None: ...
        @property
        def synapse(self) -> SynapseApp: ...
        @property
        def queue(self) -> JobQueue: ...
        @property
        def log_widget(self) -> EventLog: ...
        @property
        def counts(self) -> JobCounts: ...

    def _job(self) -> int | None:
        row = self.queue.highlighted_job
        if row is None:
            self.notify("no job highlighted in the queue", severity="warning")
            return None
        return row.job_id

    def action_pause_job(self) -> None:
        row = self.queue.highlighted_job
        bridge = self.synapse.bridge
        if row is None or bridge is None:
            self.notify("no job highlighted in the queue", severity="warning")
            return
        if row.state == "paused":
            bridge.resume(row.job_id)
        else:
            self.queue.mark_pausing(row.job_id)  # at once: the engine stops at a piece's end
            bridge.pause(row.job_id)

    def action_pause_all(self) -> None:
        bridge = self.synapse.bridge
        if bridge is None:
            return
        states = self.queue.counts()
        runnable = sum(states.get(s, 0) for s in ("queued", "hashing", "uploading"))
        if runnable:
            bridge.pause_all()
            self.log_widget.add("info", "pausing every job")
        else:
            bridge.resume_all()
            self.draining = False
            self.counts.draining = False
            self.query_one(BackendBanner).status = ""
            self.log_widget.add("info", "resuming every job")

    @work(group="cancel", exclusive=True, exit_on_error=False)
    async def action_cancel_job(self) -> None:
        """Cancel the highlighted job; asks first when it has sent data."""
        from synapse_tui.ui.screens.confirm import ConfirmScreen

        row = self.queue.highlighted_job
        bridge = self.synapse.bridge
        if row is None or bridge is None:
            self.notify("no job highlighted in the queue", severity="warning")
            return
        if row.state in FINISHED:
            return
        if row.sent > 0:
            name = display_path(os.path.basename(os.fsencode(row.path)))
            sure = await self.app.push_screen_wait(
                ConfirmScreen(
                    f"Cancel {name}?",
                    f"{format_size(row.sent)} of {format_size(row.size)} sent. The partial "
                    "upload stays on the server: queueing the file again resumes it.",
                    yes="Cancel job",
                    no="Keep",
                )
            )
            if not sure:
                return
        bridge.cancel(row.job_id)

    @work(group="cancel", exclusive=True, exit_on_error=False)
    async def action_cancel_all(self) -> None:
        """Cancel every unfinished job, after one question."""
        from synapse_tui.ui.screens.confirm import ConfirmScreen

        bridge = self.synapse.bridge
        unfinished = sum(n for s, n in self.queue.counts().items() if s not in FINISHED)
        if bridge is None or not unfinished:
            return
        sure = await self.app.push_screen_wait(
            ConfirmScreen(
                f"Cancel all {unfinished} unfinished jobs?",
                "What they sent so far stays on the server: queueing the files again "
                "resumes their uploads.",
                yes="Cancel all",
                no="Keep",
            )
        )
        if sure:
            n = await self._cancel_unfinished(bridge)
            self.log_widget.add("info", f"cancelled {n} job(s)")

    async def _cancel_unfinished(self, bridge: Any) -> int:
        """Cancel the view's unfinished jobs a window at a time, by id (never all ids at
        once: a million queued jobs are a thousand windows of a thousand)."""
        source = self.queue.asker.source
        if source is None:
            return 0
        n = 0
        # The registering rows before the active jobs: a collection's files waiting for
        # their data unit are journal rows in the engine, in no view of the jobs in memory,
        # and the units step starts once nothing is active. Among the active, a registering
        # one was (or, moved there since, is now) cancelled again: harmless, not counted.
        for state in ("queued", "paused", "registering", ACTIVE_FILTER):
            after = 0
            while True:
                ask = Ask(limit=MAX_ROWS, state=state, at=after, known=(after, 0))
                rows = [r for r in (await source(ask)).rows if r.job_id >= after]
                if not rows:
                    break
                for row in rows:
                    bridge.cancel(row.job_id)
                    n += state != ACTIVE_FILTER or row.state != "registering"
                after = rows[-1].job_id + 1
        return n

    def action_retry_failed(self) -> None:
        """`r`: queue the failed jobs again and end the backoff of the retrying ones now."""
        bridge = self.synapse.bridge
        if bridge is None:
            return
        failed = self.queue.counts().get("failed", 0)
        bridge.retry_failed()
        self.log_widget.add("info", f"retrying now: {failed} failed job(s), every backoff ended")

    def action_drain(self) -> None:
        bridge = self.synapse.bridge
        if bridge is None:
            return
        self.draining = not self.draining
        if self.draining:
            bridge.drain()
            self.log_widget.add("info", "draining: finishing what is in flight, starting nothing")
        else:
            bridge.undrain()
            self.log_widget.add("info", "drain off: starting queued jobs again")
        self.counts.draining = self.draining
        self.query_one(BackendBanner).status = "draining" if self.draining else ""

    def action_concurrency(self, step: int) -> None:
        bridge = self.synapse.bridge
        if bridge is None:
            return
        self.concurrency = max(1, min(64, self.concurrency + step))
        bridge.set_concurrency(self.concurrency)
        # Shown where the value lives (the summary line, the counts), not in a toast:
        # twenty presses made twenty toasts over the progress lines.
        self.counts.concurrency = self.concurrency

    def action_bandwidth(self) -> None:
        from synapse_tui.ui.screens.prompt import PromptScreen

        def done(text: str | None) -> None:
            if text is None:
                return
            try:
                rate = parse_rate(text)
            except ValueError as exc:
                self.notify(str(exc), severity="error")
                return
            self.set_bandwidth(rate)

        current = "" if self.bwlimit is None else format_rate(self.bwlimit).replace(" ", "")
        self.app.push_screen(
            PromptScreen(
                "Bandwidth limit per second",
                "e.g. 20M, 500K; 0 or empty: unlimited",
                current.removesuffix("/s").replace("iB", ""),
            ),
            done,
        )

    def set_bandwidth(self, rate: float | None) -> None:
        bridge = self.synapse.bridge
        self.bwlimit = rate
        if bridge is not None:
            bridge.set_bwlimit(rate)
        self.counts.bwlimit = rate
        self.log_widget.add("info", f"bandwidth limit {format_rate(rate)}")
