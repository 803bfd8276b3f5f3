"""Find (or build once) a Python >= 3.12 with the official `synapse-sdk` installed."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
from pathlib import Path

ENV_VAR = "SYNAPSE_TUI_SDK_PYTHON"


def _real_home() -> Path:
    # Tests point HOME at a temp folder; the cached venv belongs in the real one.
    return Path(pwd.getpwuid(os.getuid()).pw_dir)


def _venv_dir() -> Path:
    return _real_home() / ".cache" / "synapse-tui" / "sdk-venv"


def _runs(python: str, code: str, timeout: float = 120) -> bool:
    try:
        proc = subprocess.run([python, "-c", code], capture_output=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError):
        return False
    return proc.returncode == 0


def _has_sdk(python: str) -> bool:
    return _runs(python, "import synapse_sdk.clients.backend")


def _python312() -> str | None:
    candidates = [shutil.which("python3.12")]
    candidates += sorted(glob.glob(str(_real_home() / ".pyenv/versions/3.12*/bin/python")))
    for candidate in candidates:
        if candidate and _runs(candidate, "import sys; assert sys.version_info >= (3, 12)"):
            return candidate
    return None


def sdk_python() -> Path | None:
    """A python executable that can `import synapse_sdk`, or None when none can be had.

    `SYNAPSE_TUI_SDK_PYTHON` wins; else a venv cached at ~/.cache/synapse-tui/sdk-venv,
    created from python3.12 (PATH or pyenv) with `pip install synapse-sdk` on first use.
    """
    configured = os.environ.get(ENV_VAR)
    if configured:
        return Path(configured) if _has_sdk(configured) else None
    venv = _venv_dir()
    python = venv / "bin" / "python"
    if python.exists() and _has_sdk(str(python)):
        return python
    base = _python312()
    if base is None:
        return None
    try:
        subprocess.run(
            [base, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=300
        )
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "synapse-sdk"],
            check=True,
            capture_output=True,
            timeout=900,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return python if _has_sdk(str(python)) else None
