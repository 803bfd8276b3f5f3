"""Themes as data: four built-ins, user themes, broken files reported, choice remembered."""

from __future__ import annotations

import json
from typing import Any

from synapse_tui import paths
from synapse_tui.config import load_settings
from synapse_tui.ui.themes import builtin_folder, load_themes

BUILTIN = ["synapse-16color", "synapse-dark", "synapse-high-contrast", "synapse-light"]


def test_builtin_themes_load() -> None:
    themes, errors = load_themes()
    assert errors == []
    assert sorted(t.name for t in themes) == BUILTIN
    folder = builtin_folder()
    assert folder is not None and (folder / "synapse-dark.json").is_file()
    sixteen = next(t for t in themes if t.name == "synapse-16color")
    colours = [sixteen.primary, sixteen.error, sixteen.success, sixteen.warning]
    assert all(c is not None and c.startswith("ansi_") for c in colours)


def test_light_theme_is_light() -> None:
    themes, _ = load_themes()
    assert not next(t for t in themes if t.name == "synapse-light").dark


async def test_broken_user_theme_is_reported_not_fatal(app_factory: Any) -> None:
    folder = paths.config_dir() / "themes"
    folder.mkdir(parents=True)
    (folder / "broken.json").write_text("{ not json")
    (folder / "nocolour.json").write_text(json.dumps({"name": "x", "primary": "banana"}))
    (folder / "mine.json").write_text(
        json.dumps({"name": "mine", "primary": "#ff8800", "dark": True})
    )
    app = app_factory(start_engine=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert "mine" in app.available_themes
        assert len(app.theme_errors) == 2
        assert any("broken.json" in e for e in app.theme_errors)
        assert any("banana" in e for e in app.theme_errors)
        notes = [n.message for n in app._notifications]
        assert any("broken.json" in m for m in notes)


async def test_t_cycles_and_choice_is_remembered(app_factory: Any) -> None:
    app = app_factory(start_engine=False)
    async with app.run_test(size=(80, 24)) as pilot:
        assert app.theme == "synapse-dark"
        await pilot.press("t")
        assert app.theme == "synapse-high-contrast"
        await pilot.press("t")
        assert app.theme == "synapse-light"
        await pilot.pause(0.3)
        for _ in range(40):
            if load_settings().theme == "synapse-light":
                break
            await pilot.pause(0.05)
    assert load_settings().theme == "synapse-light"
    again = app_factory(start_engine=False, settings=load_settings())
    async with again.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert again.theme == "synapse-light"


async def test_t_pressed_many_times_piles_no_toasts(app_factory: Any) -> None:
    """Twenty presses of `t` used to stack twenty toasts over the panes: the theme now shows
    itself, and the event log names it."""
    app = app_factory(start_engine=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        before = len(app._notifications)
        for _ in range(20):
            await pilot.press("t")
        await pilot.pause()
        assert len(app._notifications) == before
        assert any(f"theme {app.theme}" in line for line in app.dashboard.log_widget.lines_written)
