"""The house rules of issue 19, read from the source: imports run one way, the engine's
wiring is typed, and a job's state changes in one place."""

from __future__ import annotations

import ast
import typing
from pathlib import Path

import synapse_tui
from synapse_tui import cli
from synapse_tui.engine import factory
from synapse_tui.engine.events import Listener
from synapse_tui.engine.protocol import ProtocolClient
from synapse_tui.engine.scheduler import UploadManager
from synapse_tui.ui import bridge

PACKAGE = Path(synapse_tui.__file__).parent


def _modules(*folders: str) -> list[Path]:
    found = [p for f in folders for p in sorted((PACKAGE / f).rglob("*.py"))]
    assert found, folders  # the walk found the package: the checks below are not vacuous
    return found


def _imported(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def test_nothing_imports_the_command_line_module() -> None:
    """cli.py is the top: the dashboard, the engine and the service never import it (the
    dashboard's bridge did, for make_client and make_manager)."""
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in _modules(".")
        if path.name != "cli.py" and "synapse_tui.cli" in _imported(ast.parse(path.read_text()))
    ]
    assert offenders == []


def test_the_wiring_is_typed() -> None:
    """engine/factory.py builds the client and the manager; the front ends' wrappers keep
    its types instead of Any."""
    # The wrappers import these names for the type checker only: given here to resolve.
    names = {"ProtocolClient": ProtocolClient, "UploadManager": UploadManager, "Listener": Listener}

    def returns(fn: object) -> object:
        return typing.get_type_hints(fn, localns=names)["return"]

    assert returns(factory.make_client) is returns(cli.make_client) is ProtocolClient
    for make in (factory.make_manager, cli.make_manager, bridge.default_factory):
        assert returns(make) is UploadManager, make


def test_only_the_factory_builds_a_manager() -> None:
    calls = [
        str(path.relative_to(PACKAGE))
        for path in _modules(".")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call)
        and getattr(node.func, "id", getattr(node.func, "attr", None)) == "UploadManager"
    ]
    assert calls == ["engine/factory.py"]


def test_a_jobs_state_is_assigned_in_one_place() -> None:
    """`job.state = ...` happens in UploadManager.transition only (checked against the
    table of engine/states.py); everything else goes through set_state or transition."""
    places = []
    for path in _modules("engine", "service"):
        tree = ast.parse(path.read_text())
        for fn in ast.walk(tree):
            if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(fn):
                targets = (
                    node.targets
                    if isinstance(node, ast.Assign)
                    else [node.target]
                    if isinstance(node, ast.AugAssign | ast.AnnAssign)
                    else []
                )
                for target in targets:
                    if isinstance(target, ast.Attribute) and target.attr == "state":
                        places.append(f"{path.relative_to(PACKAGE)}:{fn.name}")
    assert places == ["engine/scheduler.py:transition"]
