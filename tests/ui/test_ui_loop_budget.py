"""The UI loop's fixed costs while a big batch uploads: no layout per scan line, and the
collector's full passes kept off the objects start-up made (issue 21, bench case 10)."""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

from textual.app import App, ComposeResult

from synapse_tui.engine.events import ScanProgress
from synapse_tui.ui import heap
from synapse_tui.ui.app import SynapseApp
from synapse_tui.ui.widgets.scan_status import ScanStatus


class ScanApp(App[None]):
    CSS = "#scan { height: auto; display: none; } #scan.-shown { display: block; }"

    def compose(self) -> ComposeResult:
        yield ScanStatus(id="scan")


def record_layouts(widget: ScanStatus) -> list[bool]:
    calls: list[bool] = []
    original = widget.refresh

    def refresh(*regions: Any, **kwargs: Any) -> Any:
        calls.append(bool(kwargs.get("layout")))
        return original(*regions, **kwargs)

    widget.refresh = refresh  # type: ignore[method-assign]
    return calls


def scanned(files: int) -> ScanProgress:
    return ScanProgress(files=files, bytes=64 * files, duplicates=0, already_uploaded=0, skipped=0)


async def test_scan_lines_repaint_without_a_layout_while_their_size_stays() -> None:
    app = ScanApp()
    async with app.run_test(size=(100, 10)) as pilot:
        scan = app.query_one(ScanStatus)
        scan.show(scanned(1000))
        await pilot.pause()
        assert "scanning… 1000 files" in str(scan.render())
        layouts = record_layouts(scan)
        for n in range(1001, 1050):  # a scan's progress, several times a second
            scan.show(scanned(n))
        await pilot.pause()
        assert "1049 files" in str(scan.render())
        assert layouts and not any(layouts)  # repainted, never laid out again


def test_freeze_and_thaw_pair_up() -> None:
    assert gc.get_freeze_count() == 0
    heap.freeze_startup()
    heap.freeze_startup()  # a second app in the same process
    assert gc.get_freeze_count() > 0
    heap.thaw()
    assert gc.get_freeze_count() > 0  # the other app still runs
    heap.thaw()
    assert gc.get_freeze_count() == 0
    heap.thaw()  # one too many is harmless
    assert gc.get_freeze_count() == 0


async def test_the_dashboard_freezes_its_start_up_and_thaws_it_on_exit(
    app_factory: Callable[..., SynapseApp],
) -> None:
    app = app_factory(start_engine=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert gc.get_freeze_count() > 10_000  # modules, classes, the widget tree
        # The collector's generations (what a full pass walks) no longer hold the screen.
        assert all(o is not app.dashboard for o in gc.get_objects())
    assert gc.get_freeze_count() == 0
    assert any(o is app.dashboard for o in gc.get_objects())  # the collector's again


async def test_files_finishing_batch_after_batch_read_the_ledger_once(
    app_factory: Callable[..., SynapseApp],
) -> None:
    """Each batch with a finished file read the ledger (a thread and a worker), eight times
    a second with small files: now one read covers what finished within LEDGER_EVERY."""
    from synapse_tui.engine.events import JobDone
    from synapse_tui.ui.messages import EngineUpdate
    from tests.ui.conftest import wait_for

    app = app_factory(start_engine=False)
    async with app.run_test(size=(120, 40)) as pilot:
        reads: list[float] = []

        def read() -> None:
            reads.append(1)

        app.dashboard.refresh_ledger = read  # type: ignore[method-assign,assignment]
        for n in range(1, 21):  # twenty batches, as fast as the loop takes them
            done = JobDone(n, f"/data/f{n}.bin", 64, "0" * 32, "u", 0)
            app.dashboard.apply(EngineUpdate([done], {}))
        await wait_for(pilot, lambda: len(reads) >= 1, timeout=10)
        await pilot.pause(0.2)
        assert len(reads) == 1
        app.dashboard.apply(EngineUpdate([JobDone(21, "/data/f21.bin", 64, "0" * 32, "u", 0)], {}))
        await wait_for(pilot, lambda: len(reads) >= 2, timeout=10)  # a later file: read again


async def test_bulk_done_lines_come_at_most_one_per_interval(
    app_factory: Callable[..., SynapseApp],
) -> None:
    """Batch after batch of small files: one line at once, then one for all the files
    that finished within BULK_EVERY (not one per batch, eight a second)."""
    from synapse_tui.engine.events import JobDone
    from synapse_tui.ui.messages import EngineUpdate
    from tests.ui.conftest import wait_for

    def batch(prefix: str, start: int) -> EngineUpdate:
        done = [
            JobDone(n, f"/data/{prefix}{n}.bin", 64, "m" * 32, "u", 0)
            for n in range(start, start + 300)
        ]
        return EngineUpdate(list(done), {})

    app = app_factory(start_engine=False)
    async with app.run_test(size=(120, 40)) as pilot:
        log = app.dashboard.log_widget
        before = len(log.lines_written)
        app.dashboard.apply(batch("g", 0))
        app.dashboard.apply(batch("h", 300))
        app.dashboard.apply(batch("h", 600))
        assert len(log.lines_written) == before + 1
        assert "done 300 files: /data/g0.bin … /data/g299.bin" in log.lines_written[-1]
        await wait_for(pilot, lambda: len(log.lines_written) > before + 1, timeout=10)
        assert "done 600 files: /data/h300.bin … /data/h899.bin" in log.lines_written[-1]
        await pilot.pause(0.3)
        assert len(log.lines_written) == before + 2
