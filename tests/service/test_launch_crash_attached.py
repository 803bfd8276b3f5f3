"""A crash at the dashboard's launch exits non-zero in the default (attached) mode too:
tests/test_cli_usability.py proves it for --foreground."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.service.conftest import Env

BROKEN_FOOTER = (
    "import sys\n"
    "import synapse_tui.ui.screens.dashboard as d\n"
    "def broken(*a, **k):\n"
    "    raise TypeError('Footer() got an unexpected keyword argument')\n"
    "d.Footer = broken\n"
    "from synapse_tui.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def test_a_crash_at_launch_of_the_attached_dashboard_exits_non_zero(
    engine_env: Env, tmp_path: Path
) -> None:
    assert "SYNAPSE_TUI_FOREGROUND" not in engine_env.env  # the engine's mode
    proc = subprocess.run(
        [sys.executable, "-c", BROKEN_FOOTER, str(tmp_path)],
        env={**engine_env.env, "TERM": "xterm"},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "unexpected keyword argument" in proc.stderr + proc.stdout
    assert proc.returncode != 0
