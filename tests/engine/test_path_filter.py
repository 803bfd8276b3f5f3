"""`PathFilter`: aws s3's --exclude/--include rules, and the walk that applies them."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest

from synapse_tui.engine import scan
from synapse_tui.engine.errors import ConfigError
from synapse_tui.engine.filters import PathFilter, relative_to
from synapse_tui.engine.scan import Refused, walk
from synapse_tui.service.wire import WireError, command_from_wire


def test_every_file_is_taken_unless_a_rule_says_otherwise_and_the_last_match_wins() -> None:
    assert PathFilter().takes(b"any/thing") and not PathFilter()
    f = PathFilter([(False, "*"), (True, "*.jpg"), (False, "raw/*")])
    assert f.takes(b"a.jpg") and f.takes(b"img/deep/a.jpg")  # `*` matches `/` too
    assert not f.takes(b"a.json") and not f.takes(b"raw/a.jpg")
    assert not f.takes(b"a.JPG")  # case-sensitive, as aws s3
    reversed_order = PathFilter([(False, "raw/*"), (True, "*.jpg"), (False, "*")])
    assert not reversed_order.takes(b"a.jpg")  # the last rule matches every file
    assert PathFilter([(False, "[ab]?.txt")]).takes(b"c1.txt")
    assert not PathFilter([(False, "[ab]?.txt")]).takes(b"b1.txt")
    undecodable = b"caf\xe9.jpg"  # not UTF-8: matched through surrogateescape, no error
    assert f.takes(undecodable) and not PathFilter([(False, "*.jpg")]).takes(undecodable)


def test_paths_are_relative_to_the_named_path() -> None:
    assert relative_to(b"/d", b"/d/a/b.jpg") == b"a/b.jpg"
    assert relative_to(b"/d/", b"/d/a/b.jpg") == b"a/b.jpg"
    assert relative_to(b"/d/x.jpg", b"/d/x.jpg") == b"x.jpg"  # a named file: its name


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ([(True, "")], "empty"),
        ([(False, "x" * 1025)], "over 1024"),
        ([(False, f"*.{i}") for i in range(65)], "at most 64"),
    ],
)
def test_bad_rules_are_one_clear_line(rules: list[tuple[bool, str]], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        PathFilter(rules)


def test_the_wire_form_round_trips_and_checks_its_shape() -> None:
    f = PathFilter([(False, "*"), (True, "*.jpg")])
    assert PathFilter.from_wire(f.to_wire()).rules == f.rules
    for bad in ("*.jpg", [["keep", "*.jpg"]], [["include"]], [["include", 3]]):
        with pytest.raises(ConfigError):
            PathFilter.from_wire(bad)
    with pytest.raises(WireError, match="list of lists of strings"):
        command_from_wire({"cmd": "add", "id": 1, "filters": [["include", 3]]})
    _, add = command_from_wire({"cmd": "add", "id": 1, "filters": [["include", "*.jpg"]]})
    assert add.filters == [["include", "*.jpg"]]  # type: ignore[attr-defined]


def test_the_walk_leaves_out_files_and_notices_but_never_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for rel in ("a.jpg", "b.json", "sub/c.jpg", "sub/d.json", "locked/e.jpg"):
        (tmp_path / rel).parent.mkdir(exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    os.mkfifo(tmp_path / "pipe.json")  # a notice (skipped), which the filter leaves out
    os.mkfifo(tmp_path / "pipe.jpg")  # a notice it takes
    real_listing = scan._listing

    def listing(path: bytes) -> Any:  # as an unreadable folder (the tests run as root)
        if path.endswith(b"/locked"):
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_listing(path)

    monkeypatch.setattr(scan, "_listing", listing)
    items = list(walk([os.fsencode(tmp_path)], PathFilter([(False, "*"), (True, "*.jpg")])))
    files = [os.path.relpath(i[0], os.fsencode(tmp_path)) for i in items if isinstance(i, tuple)]
    refused = {os.path.basename(r.path): r for r in items if isinstance(r, Refused)}
    assert files == [b"a.jpg", b"sub/c.jpg"]
    # `locked` matches no rule that takes it, but what it holds is unknown: never hidden.
    assert set(refused) == {b"pipe.jpg", b"locked"}
    assert refused[b"locked"].error and not refused[b"pipe.jpg"].error
    assert "Permission denied" in refused[b"locked"].reason


def test_a_file_gone_mid_walk_is_an_error_only_when_the_rules_take_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("a.jpg", "gone.jpg", "gone.tmp"):
        (tmp_path / name).write_bytes(b"x")
    real_stat = os.stat

    def stat(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        if os.fsencode(path).endswith((b"gone.jpg", b"gone.tmp")):  # listed, then deleted
            raise FileNotFoundError(errno.ENOENT, "No such file or directory")
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", stat)
    top = os.fsencode(tmp_path)
    items = list(walk([top], PathFilter([(False, "*.tmp")])))
    refused = [r for r in items if isinstance(r, Refused)]
    assert [os.path.basename(r.path) for r in refused] == [b"gone.jpg"]
    assert refused[0].error and refused[0].reason == "no such file or directory"
    assert [os.path.basename(i[0]) for i in items if isinstance(i, tuple)] == [b"a.jpg"]
    # A named path that does not exist is reported whatever the rules.
    named = list(walk([top + b"/gone.tmp"], PathFilter([(False, "*.tmp")])))
    assert [r.error for r in named if isinstance(r, Refused)] == [True]
