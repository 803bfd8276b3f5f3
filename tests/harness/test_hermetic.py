"""Tests never build environments or install packages: what they need is found or skipped."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tests.bench import support
from tests.harness import sdk_env


def test_no_sdk_environment_is_a_reason_not_an_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "no-sdk-venv"
    monkeypatch.delenv(sdk_env.ENV_VAR, raising=False)
    monkeypatch.setattr(sdk_env, "DEFAULT_VENV", missing)
    python, why = sdk_env.find()
    assert python is None
    assert sdk_env.ENV_VAR in why and "python -m tests.harness.sdk_env" in why
    assert not missing.exists()  # nothing was created


def test_a_broken_configured_sdk_python_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(sdk_env.ENV_VAR, str(tmp_path / "nope" / "python"))
    python, why = sdk_env.find()
    assert python is None and "cannot import synapse_sdk" in why


def test_bench_tools_are_never_installed_under_pytest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A missing reference tool is reported; apt-get (here a recorder on PATH) never runs."""
    calls = tmp_path / "apt-calls"
    apt = tmp_path / "apt-get"
    apt.write_text(f'#!/bin/sh\necho "$@" >> {calls}\nexit 1\n')
    apt.chmod(apt.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}/usr/bin:/bin")
    assert support.ensure_tool("no-such-tool-h19", "no-such-package") is None
    assert not calls.exists()
