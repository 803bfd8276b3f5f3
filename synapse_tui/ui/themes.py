"""Themes as data: JSON files in `themes/` (shipped in the wheel) and the user's config folder."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import fields
from importlib import resources
from pathlib import Path
from typing import Any

from textual.color import Color
from textual.theme import Theme

from synapse_tui import paths

DEFAULT_THEME = "synapse-dark"
SIXTEEN_COLOUR_THEME = "synapse-16color"
COLOUR_KEYS = (
    "primary",
    "secondary",
    "warning",
    "error",
    "success",
    "accent",
    "foreground",
    "background",
    "surface",
    "panel",
    "boost",
)
ALLOWED = {f.name for f in fields(Theme)}


class ThemeError(ValueError):
    """A theme file that cannot be used (reported, never fatal)."""


def builtin_folder() -> Path | None:
    """`synapse_tui/themes` in an installed wheel, else the source checkout's `themes/`."""
    try:
        shipped = resources.files("synapse_tui") / "themes"
        if shipped.is_dir():
            return Path(str(shipped))
    except (ModuleNotFoundError, OSError):
        pass
    checkout = Path(__file__).resolve().parents[2] / "themes"
    return checkout if checkout.is_dir() else None


def user_folder() -> Path:
    return paths.config_dir() / "themes"


def theme_from_data(data: Any, source: str) -> Theme:
    """Validate one theme's data (a JSON object) and build the Textual Theme."""
    if not isinstance(data, dict):
        raise ThemeError(f"{source}: a theme must be a JSON object")
    unknown = set(data) - ALLOWED
    if unknown:
        raise ThemeError(f"{source}: unknown keys {', '.join(sorted(unknown))}")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ThemeError(f"{source}: `name` must be a non-empty string")
    if not isinstance(data.get("primary"), str):
        raise ThemeError(f"{source}: `primary` colour is required")
    for key in COLOUR_KEYS:
        value = data.get(key)
        if value is None:
            continue
        try:
            Color.parse(value)
        except Exception:
            raise ThemeError(f"{source}: {key} is not a colour: {value!r}") from None
    variables = data.get("variables", {})
    if not isinstance(variables, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in variables.items()
    ):
        raise ThemeError(f"{source}: `variables` must map names to strings")
    try:
        return Theme(**data)
    except TypeError as exc:
        raise ThemeError(f"{source}: {exc}") from None


def load_file(path: Path) -> Theme:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ThemeError(f"{path}: {exc}") from None
    return theme_from_data(data, str(path))


def load_folder(folder: Path | None) -> tuple[list[Theme], list[str]]:
    """Every `*.json` theme in `folder`, and one error line per broken file."""
    themes: list[Theme] = []
    errors: list[str] = []
    if folder is None or not folder.is_dir():
        return themes, errors
    for path in sorted(folder.glob("*.json")):
        try:
            themes.append(load_file(path))
        except ThemeError as exc:
            errors.append(str(exc))
    return themes, errors


def load_themes() -> tuple[list[Theme], list[str]]:
    """Built-in themes then user themes (a user theme may replace a built-in by name)."""
    builtin, errors = load_folder(builtin_folder())
    user, user_errors = load_folder(user_folder())
    return builtin + user, errors + user_errors


def sixteen_colours(environ: Mapping[str, str]) -> bool:
    """True on a terminal of 16 colours, judged as Rich does: `COLORTERM=truecolor` or
    `24bit` means millions; a TERM ending in `-256color` (or `kitty`) 256; any other TERM
    (`xterm`, `linux`, `screen`, `vt100`) 16."""
    if environ.get("COLORTERM", "").strip().lower() in ("truecolor", "24bit"):
        return False
    term = environ.get("TERM", "").strip().lower()
    if not term or term == "dumb":
        return False  # no colour at all, or not a terminal: nothing to choose for
    suffix = term.rpartition("-")[2]
    return suffix not in ("256color", "kitty", "direct", "truecolor")


def automatic_theme(environ: Mapping[str, str]) -> str:
    """The theme when the user chose none: the 16-colour one where that is all there is."""
    return SIXTEEN_COLOUR_THEME if sixteen_colours(environ) else DEFAULT_THEME
