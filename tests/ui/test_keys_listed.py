"""Every key the dashboard binds is listed in its help (`?`), under the name shown there."""

from __future__ import annotations

import pytest
from textual.binding import Binding

from synapse_tui.ui.app import SynapseApp
from synapse_tui.ui.screens.dashboard import DashboardScreen
from synapse_tui.ui.screens.help import KEYS
from synapse_tui.ui.widgets.file_browser import FileBrowser
from synapse_tui.ui.widgets.job_queue import JobQueue

# Textual's key names as the help writes them.
SHOWN = {
    "greater_than_sign": ">",
    "less_than_sign": "<",
    "question_mark": "?",
    "plus": "+",
    "minus": "-",
    "asterisk": "*",
    "full_stop": ".",
    "slash": "/",
    "escape": "esc",
    "pagedown": "pgdn",
    "pageup": "pgup",
    "right": "→",
    "left": "←",
    "down": "↓",
    "up": "↑",
}


def bound_keys() -> list[tuple[str, str]]:
    """(where, key) of every binding of the dashboard, its panes and the app."""
    out = []
    for owner in (SynapseApp, DashboardScreen, FileBrowser, JobQueue):
        for binding in owner.BINDINGS:
            assert isinstance(binding, Binding)
            for key in binding.key.split(","):
                out.append((owner.__name__, SHOWN.get(key.strip(), key.strip())))
    return out


def listed() -> set[str]:
    """Every key named in the help's key column ("tab / shift+tab", "1 2 3 4", "→ l / ← h"):
    a "/" between keys separates them, a "/" alone is the key."""
    names: set[str] = set()
    for _, rows in KEYS:
        for keys, _ in rows:
            tokens = keys.split()
            names.update(tokens if tokens == ["/"] else (t for t in tokens if t != "/"))
    return names


@pytest.mark.parametrize(("where", "key"), bound_keys())
def test_every_bound_key_is_in_the_help(where: str, key: str) -> None:
    assert key in listed(), f"{where} binds {key!r}; the help (?) does not list it"
