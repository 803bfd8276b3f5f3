"""The engine never imports Textual or Rich: checked in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys

ENGINE_MODULES = [
    "synapse_tui.engine",
    "synapse_tui.engine.errors",
    "synapse_tui.engine.events",
    "synapse_tui.engine.hashing",
    "synapse_tui.engine.journal",
    "synapse_tui.engine.limits",
    "synapse_tui.engine.meter",
    "synapse_tui.engine.names",
    "synapse_tui.engine.protocol",
    "synapse_tui.engine.scan",
    "synapse_tui.engine.scheduler",
    "synapse_tui.engine.uploader",
    "synapse_tui.headless",
    "synapse_tui.config",
]


def loaded_after_import(modules: list[str]) -> set[str]:
    code = (
        "import importlib, json, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    return set(json.loads(out))


def test_engine_loads_no_textual_or_rich() -> None:
    loaded = loaded_after_import(ENGINE_MODULES)
    assert "synapse_tui.engine.scheduler" in loaded  # the import really happened
    ui = sorted(m for m in loaded if m.split(".")[0] in ("textual", "rich"))
    assert ui == []


def test_the_check_would_see_textual() -> None:
    # The same probe must notice Textual when it is loaded, or the test above proves nothing.
    loaded = loaded_after_import(["textual.app"])
    assert "textual" in loaded
