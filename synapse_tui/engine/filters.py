"""`--include` / `--exclude`: which files found under a named path are taken (aws s3's rules)."""

from __future__ import annotations

import argparse
import fnmatch
import os
import re
from collections.abc import Sequence
from typing import Any

from synapse_tui.engine.errors import ConfigError

MAX_RULES = 64
MAX_PATTERN = 1024  # characters


class PathFilter:
    """Rules `(include, pattern)` in the order given; every file is taken unless a rule
    says otherwise, and the last rule that matches decides (as `aws s3 cp --exclude
    --include`). A pattern is a shell glob matched, case-sensitive, against the file's
    path relative to the path named on the command line (its own name for a named file):
    `*` also matches `/`, so `--exclude 'raw/*'` leaves out everything under `raw/`."""

    __slots__ = ("_compiled", "rules")

    def __init__(self, rules: Sequence[tuple[bool, str]] = ()) -> None:
        if len(rules) > MAX_RULES:
            raise ConfigError(f"at most {MAX_RULES} --include/--exclude patterns, not {len(rules)}")
        for _, pattern in rules:
            if not pattern:
                raise ConfigError("an --include or --exclude pattern is empty")
            if len(pattern) > MAX_PATTERN:
                raise ConfigError(
                    f"an --include or --exclude pattern is over {MAX_PATTERN} characters"
                )
        self.rules = tuple((bool(inc), str(pat)) for inc, pat in rules)
        self._compiled = [
            (inc, re.compile(fnmatch.translate(pat)).match) for inc, pat in self.rules
        ]

    def __bool__(self) -> bool:
        return bool(self.rules)

    def takes(self, relative: bytes) -> bool:
        """Whether the file at `relative` (to its named path) is taken."""
        name = os.fsdecode(relative)
        taken = True
        for include, match in self._compiled:
            if match(name) is not None:
                taken = include
        return taken

    def to_wire(self) -> list[list[str]]:
        return [["include" if inc else "exclude", pat] for inc, pat in self.rules]

    @classmethod
    def from_wire(cls, value: object) -> PathFilter:
        """From `to_wire`'s form; anything else is a ConfigError (one line to the client)."""
        if not isinstance(value, list):
            raise ConfigError("filters must be a list of [include|exclude, pattern]")
        rules: list[tuple[bool, str]] = []
        for item in value:
            if (
                not isinstance(item, list)
                or len(item) != 2
                or item[0] not in ("include", "exclude")
                or not isinstance(item[1], str)
            ):
                raise ConfigError("filters must be a list of [include|exclude, pattern]")
            rules.append((item[0] == "include", item[1]))
        return cls(rules)


def relative_to(top: bytes, path: bytes) -> bytes:
    """`path`, found walking the named `top`, relative to it (a named file: its name)."""
    if path == top:
        return os.path.basename(top.rstrip(b"/")) or top
    return path[len(top) :].lstrip(b"/")  # the walk joins names to `top` as it was given


class _Rule(argparse.Action):
    """`--include P` / `--exclude P`, kept in command-line order in one list."""

    def __call__(self, parser: Any, namespace: Any, values: Any, option: Any = None) -> None:
        rules = list(getattr(namespace, self.dest, None) or [])
        rules.append((self.const, values))
        setattr(namespace, self.dest, rules)


def add_filter_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "filters (in order, the last that matches wins; patterns match the path under "
        "each PATH, * matches / too)"
    )
    for flag, include, example in (
        ("--exclude", False, "leave out the files matching PATTERN, e.g. '*.tmp' or 'raw/*'"),
        ("--include", True, "take the files matching PATTERN back in, e.g. --exclude '*' "
         "--include '*.jpg'"),
    ):  # fmt: skip
        group.add_argument(
            flag,
            dest="filters",
            action=_Rule,
            const=include,
            default=[],
            metavar="PATTERN",
            help=example,
        )
