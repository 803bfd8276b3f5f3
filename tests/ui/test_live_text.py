"""Live text repaints in place; only a change of the widget's own size re-lays out the screen."""

from __future__ import annotations

from typing import Any

from textual.app import App, ComposeResult
from textual.widgets import Label, Static

from synapse_tui.ui.widgets.live_text import set_live_text


class LiveApp(App[None]):
    CSS = """
    #auto { width: auto; height: 1; }
    #wrapped { width: 20; height: auto; }
    """

    def compose(self) -> ComposeResult:
        yield Label("now 12.0 MiB/s", id="auto")
        yield Static("queued 1", id="wrapped")


def record_layouts(widget: Static) -> list[bool]:
    """The `layout` flag of every refresh the widget asks for from now on."""
    calls: list[bool] = []
    original = widget.refresh

    def refresh(*regions: Any, **kwargs: Any) -> Any:
        calls.append(bool(kwargs.get("layout")))
        return original(*regions, **kwargs)

    widget.refresh = refresh  # type: ignore[method-assign]
    return calls


async def test_auto_width_lays_out_only_when_the_width_changes() -> None:
    app = LiveApp()
    async with app.run_test(size=(60, 10)) as pilot:
        label = app.query_one("#auto", Label)
        layouts = record_layouts(label)
        assert set_live_text(label, "now 12.0 MiB/s", "now 13.5 MiB/s") is True
        assert set_live_text(label, "now 13.5 MiB/s", "now 13.5 MiB/s") is False
        assert not any(layouts)
        await pilot.pause()
        assert label.size.width == 14
        assert set_live_text(label, "now 13.5 MiB/s", "now 113.5 MiB/s") is True
        assert any(layouts)
        await pilot.pause()
        assert label.size.width == 15
        layouts.clear()
        assert set_live_text(label, "now 113.5 MiB/s", "eta 3分 left here") is True  # 2-cell glyph
        await pilot.pause()
        assert any(layouts) and label.size.width == 17


async def test_auto_height_lays_out_only_when_the_wrapped_height_changes() -> None:
    app = LiveApp()
    async with app.run_test(size=(60, 10)) as pilot:
        static = app.query_one("#wrapped", Static)
        layouts = record_layouts(static)
        assert set_live_text(static, "queued 1", "queued 2 · active 3") is True  # still 1 line
        assert not any(layouts)
        await pilot.pause()
        assert static.size.height == 1
        assert set_live_text(static, "queued 2 · active 3", "queued 2 · active 3 · done 4") is True
        assert any(layouts)  # wraps onto a second line
        await pilot.pause()
        assert static.size.height == 2
        layouts.clear()
        assert set_live_text(static, "queued 2 · active 3 · done 4", "a\nb\nc") is True
        await pilot.pause()
        assert any(layouts) and static.size.height == 3


def test_unmounted_widget_gets_a_layout() -> None:
    static = Static("")
    layouts = record_layouts(static)
    assert set_live_text(static, "", "hello") is True
    assert layouts == [True]
