"""What the PNG review (every theme, 80x24 and 120x40) found: the event log cut its wrapped
lines at 80 columns, the footer cut `? Keys`, the failing header's text was 2.9:1 on the
high-contrast theme's red, and 16 colours hid the dashboard behind a dialog."""

from __future__ import annotations

from typing import Any

import pytest

from synapse_tui.engine.events import (
    BackendState,
    JobProgress,
    JobQueued,
    JobState,
    JobStateChanged,
    LogMessage,
)
from synapse_tui.ui.messages import EngineUpdate

LONG = (
    "sample-03: cannot connect to https://api.example-synapse.org/api/chunked_upload/"
    "3f1c2a9e-77aa-4b0e-9d1e-5b2c6f0e8a11/: [Errno 111] Connection refused; retry 3/12 in 40.0s"
)


def screen_text(app: Any) -> list[str]:
    return [strip.text for strip in app.screen._compositor.render_strips()]


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=lambda s: f"{s[0]}x{s[1]}")
async def test_the_event_log_wraps_at_its_width_and_cuts_nothing(
    app_factory: Any, size: tuple[int, int]
) -> None:
    app = app_factory(frozen=True, start_engine=False)
    async with app.run_test(size=size) as pilot:
        app.dashboard.apply(EngineUpdate([LogMessage("warning", LONG)], {}))  # log hidden
        if size[0] < 110:
            await pilot.press("4")
        await pilot.pause()
        log = app.dashboard.log_widget
        app.dashboard.apply(EngineUpdate([LogMessage("warning", LONG)], {}))  # log shown
        await pilot.pause()
        width = log.scrollable_content_region.width
        assert not log.show_horizontal_scrollbar
        assert all(line.cell_length <= width for line in log.lines)
        shown = "".join(line.text.rstrip() for line in log.lines)
        assert shown.count("5b2c6f0e8a11/: [Errno 111]") == 2  # both copies whole
        # Hidden again (another tab at 80 columns), it keeps wrapping at the width it had.
        await pilot.press("1")
        app.dashboard.apply(EngineUpdate([LogMessage("warning", LONG)], {}))
        await pilot.pause()
        assert all(line.cell_length <= width for line in log.lines)


@pytest.mark.parametrize("pane", ["1", "2", "3", "4"])
async def test_at_80_columns_the_footer_shows_the_keys_key_whole(
    app_factory: Any, pane: str
) -> None:
    app = app_factory(frozen=True, start_engine=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press(pane)
        await pilot.pause()
        footer = screen_text(app)[-1]
        assert footer.rstrip().endswith("? Keys"), footer


async def test_at_120_columns_the_footer_names_the_palette(app_factory: Any) -> None:
    app = app_factory(frozen=True, start_engine=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        footer = screen_text(app)[-1]
        assert "? Keys" in footer and footer.rstrip().endswith("^p palette"), footer


def contrast(a: tuple[int, int, int], b: tuple[int, int, int]) -> float:
    """WCAG 2 contrast ratio of two sRGB colours."""

    def luminance(rgb: tuple[int, int, int]) -> float:
        def channel(c: int) -> float:
            v = c / 255
            return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4

        r, g, b_ = (channel(c) for c in rgb)
        return 0.2126 * r + 0.7152 * g + 0.0722 * b_

    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


@pytest.mark.parametrize("theme", ["synapse-dark", "synapse-light", "synapse-high-contrast"])
async def test_the_failing_header_reads_well_in_every_theme(app_factory: Any, theme: str) -> None:
    app = app_factory(frozen=True, start_engine=False)
    async with app.run_test(size=(80, 24)) as pilot:
        app.theme = theme
        app.dashboard.apply(EngineUpdate([BackendState(False, 1.0, "connection refused")], {}))
        await pilot.pause()
        style = app.dashboard.query_one("#banner").rich_style
        assert style.color is not None and style.bgcolor is not None
        fg, bg = style.color.get_truecolor(), style.bgcolor.get_truecolor()
        assert contrast(tuple(fg), tuple(bg)) >= 4.5, (theme, fg, bg)


async def test_in_16_colours_the_dashboard_stays_visible_behind_a_dialog(
    app_factory: Any,
) -> None:
    from synapse_tui.ui.screens.confirm import ConfirmScreen
    from tests.ui.conftest import wait_for

    class Bridge:
        running = True

        def __getattr__(self, name: str) -> Any:
            return lambda *args: None

    app = app_factory(frozen=True, start_engine=False)
    async with app.run_test(size=(80, 24)) as pilot:
        app.theme = "synapse-16color"
        app.bridge = Bridge()
        size = 300 << 20
        app.dashboard.apply(
            EngineUpdate(
                [
                    JobQueued(1, "/data/first-file.bin", size),
                    JobStateChanged(1, JobState.DONE),
                    JobQueued(2, "/data/second-file.bin", size),
                    JobStateChanged(2, JobState.UPLOADING),
                    JobProgress(2, 80 << 20, size, 1e6, 90.0),
                ],
                {},
            )
        )
        await pilot.press("2")
        app.dashboard.queue.cursor_row = 1
        await pilot.press("x")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.pause()
        text = "\n".join(screen_text(app))
        assert "Cancel second-file.bin?" in text
        assert "first-file.bin" in text and "2 Queue" in text  # the dashboard behind it


@pytest.mark.parametrize("level", ["info", "warning", "error"])
async def test_only_the_stamp_of_a_log_line_is_dim(app_factory: Any, level: str) -> None:
    app = app_factory(frozen=True, start_engine=False)
    async with app.run_test(size=(120, 40)) as pilot:
        app.theme = "synapse-light"
        app.dashboard.log_widget.add(level, "server busy")
        await pilot.pause()
        segments = list(app.dashboard.log_widget.lines[-1])
        stamp = [s for s in segments if "--:--:--" in s.text]
        body = [s for s in segments if "server busy" in s.text]
        assert stamp and all(s.style is not None and s.style.dim for s in stamp)
        assert body and not any(s.style is not None and s.style.dim for s in body)
