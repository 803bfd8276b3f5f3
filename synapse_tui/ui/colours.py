"""Theme colours for Rich text inside widgets (cells, log lines): parsed, never hard-coded."""

from __future__ import annotations

from functools import lru_cache

from rich.style import Style
from textual.color import Color


@lru_cache(maxsize=256)
def rich_style(value: str, bold: bool = False) -> Style:
    """A Rich style with the foreground `value` (a theme variable's value, e.g. "#1e90ff")."""
    try:
        return Style(color=Color.parse(value).rich_color, bold=bold)
    except Exception:
        return Style(bold=bold)
