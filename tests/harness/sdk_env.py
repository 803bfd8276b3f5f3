"""The Python >= 3.12 with the official `synapse-sdk` for the tests: found, never built by one."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

ENV_VAR = "SYNAPSE_TUI_SDK_PYTHON"
REPO_ROOT = Path(__file__).resolve().parents[2]
# Where `.ci/run` and `python -m tests.harness.sdk_env` build it (git-ignored).
DEFAULT_VENV = REPO_ROOT / ".sdk-venv"
HOW = f"set {ENV_VAR}, or build one with `python -m tests.harness.sdk_env` (as .ci/run does)"


def _runs(python: str, code: str, timeout: float = 120) -> bool:
    try:
        proc = subprocess.run([python, "-c", code], capture_output=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError):
        return False
    return proc.returncode == 0


def _has_sdk(python: str) -> bool:
    return _runs(python, "import synapse_sdk.clients.backend")


def find() -> tuple[Path | None, str]:
    """(a python that can `import synapse_sdk`, how it was found) or (None, why not).

    `SYNAPSE_TUI_SDK_PYTHON` wins; else the environment built in the repository's
    `.sdk-venv`. Nothing is created or installed here: tests stay hermetic.
    """
    configured = os.environ.get(ENV_VAR)
    if configured:
        if _has_sdk(configured):
            return Path(configured), ENV_VAR
        return None, f"{ENV_VAR}={configured} cannot import synapse_sdk"
    python = DEFAULT_VENV / "bin" / "python"
    if python.exists() and _has_sdk(str(python)):
        return python, str(DEFAULT_VENV)
    return None, f"no Python >= 3.12 with synapse-sdk: {HOW}"


def sdk_python() -> Path | None:
    return find()[0]


def python312() -> str | None:
    """A Python >= 3.12 on PATH or under pyenv, to build the environment from."""
    candidates = [shutil.which(n) for n in ("python3.13", "python3.12")]
    candidates += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.1[2-9]*/bin/python")))
    for candidate in candidates:
        if candidate and _runs(candidate, "import sys; assert sys.version_info >= (3, 12)"):
            return candidate
    return None


def build(target: Path = DEFAULT_VENV) -> Path:
    """Create `target` from a Python >= 3.12 and pip-install synapse-sdk into it (a setup
    step run by .ci/run or by hand, never by a test)."""
    python = target / "bin" / "python"
    if python.exists() and _has_sdk(str(python)):
        return python
    base = python312()
    if base is None:
        raise RuntimeError("no Python >= 3.12 on PATH or under ~/.pyenv/versions")
    subprocess.run([base, "-m", "venv", str(target)], check=True, timeout=300)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "synapse-sdk"], check=True, timeout=1800
    )
    if not _has_sdk(str(python)):
        raise RuntimeError(f"synapse-sdk does not import in {target}")
    return python


if __name__ == "__main__":  # python -m tests.harness.sdk_env [TARGET]
    where = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else DEFAULT_VENV
    try:
        print(build(where))
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        sys.exit(f"could not build the synapse-sdk environment: {exc}")
