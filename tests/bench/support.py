"""Bench plumbing: machine facts, reference tools, measured subprocesses, servers, the SDK venv."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
TOKEN = "bench-token"
MiB = 1024 * 1024
GiB = 1024 * MiB
TIME_V = "/usr/bin/time"


def say(text: str) -> None:
    """Progress for the person running the suite (stderr; the table goes to stdout)."""
    sys.stderr.write(f"[bench] {text}\n")
    sys.stderr.flush()


# -- machine -----------------------------------------------------------------------------------


def machine_facts() -> dict[str, object]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = int(line.split()[1]) * 1024
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gib": round(ram / GiB, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "os": platform.platform(terse=True),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


# -- reference tools ---------------------------------------------------------------------------

_apt_updated = False
# Only `python -m tests.bench.run` (run by hand) sets this: under pytest a missing tool is
# reported, never installed (tests do not reach a registry; .ci/run installs the packages).
ALLOW_INSTALL = False


def ensure_tool(name: str, package: str) -> str | None:
    """Path of `name`; when missing and ALLOW_INSTALL, installs `package` with apt-get."""
    global _apt_updated
    found = shutil.which(name)
    if found:
        return found
    if not ALLOW_INSTALL:
        say(f"{name} missing (Debian package {package}); its reference is skipped")
        return None
    apt = shutil.which("apt-get")
    if apt is None:
        say(f"{name} missing and no apt-get to install {package}")
        return None
    say(f"{name} missing: apt-get install -y {package}")
    try:
        if not _apt_updated:
            subprocess.run([apt, "update"], check=True, capture_output=True, timeout=600)
            _apt_updated = True
        subprocess.run(
            [apt, "install", "-y", package], check=True, capture_output=True, timeout=600
        )
    except (subprocess.SubprocessError, OSError) as exc:
        say(f"could not install {package}: {exc}")
        return None
    return shutil.which(name)


# -- measured subprocesses ---------------------------------------------------------------------


@dataclass
class Measured:
    """One finished subprocess: wall seconds, peak RSS (bytes), output."""

    seconds: float
    peak_rss: int | None
    returncode: int
    stdout: str
    stderr: str

    def json_lines(self) -> list[dict[str, Any]]:  # parsed JSON: values of any kind
        out = []
        for line in self.stdout.splitlines():
            line = line.strip()
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    out.append(json.loads(line))
        return out

    def check(self, what: str) -> Measured:
        if self.returncode != 0:
            raise RuntimeError(
                f"{what} exited {self.returncode}:\n{self.stderr[-2000:]}\n{self.stdout[-1000:]}"
            )
        return self


_MAXRSS = re.compile(r"Maximum resident set size \(kbytes\): (\d+)")
# Without /usr/bin/time: a wrapper runs the command and writes its children's ru_maxrss (KiB).
_RUSAGE_WRAPPER = (
    "import resource, subprocess, sys\n"
    "rc = subprocess.call(sys.argv[2:])\n"
    "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))\n"
    "sys.exit(rc)\n"
)


def run_measured(
    cmd: list[str], env: dict[str, str] | None = None, timeout: float = 3600
) -> Measured:
    """Run `cmd` to completion; peak RSS from `/usr/bin/time -v`, else a getrusage wrapper."""
    use_time = os.access(TIME_V, os.X_OK)
    with tempfile.NamedTemporaryFile(prefix="bench-rss-", suffix=".txt") as tf:
        if use_time:
            full = [TIME_V, "-v", "-o", tf.name, *cmd]
        else:
            full = [sys.executable, "-c", _RUSAGE_WRAPPER, tf.name, *cmd]
        started = time.perf_counter()
        proc = subprocess.run(
            full, env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT
        )
        seconds = time.perf_counter() - started
        text = Path(tf.name).read_text(errors="replace")
        peak: int | None = None
        if use_time:
            match = _MAXRSS.search(text)
            peak = int(match.group(1)) * 1024 if match else None
        elif text.strip().isdigit():
            peak = int(text.strip()) * 1024
    return Measured(seconds, peak, proc.returncode, proc.stdout, proc.stderr)


def python_cmd(*args: str) -> list[str]:
    return [sys.executable, *args]


def cli(*args: str) -> list[str]:
    return python_cmd("-m", "synapse_tui.cli", *args)


def client_env(host: str, token: str, state_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        SYNAPSE_HOST=host,
        SYNAPSE_ACCESS_TOKEN=token,
        SYNAPSE_TUI_STATE_DIR=str(state_dir),
        PYTHONPATH=str(REPO_ROOT),
    )
    for key in ("SYNAPSE_PLUGIN_RUN_USER_TOKEN", "SYNAPSE_PLUGIN_RUN_TENANT"):
        env.pop(key, None)
    return env


# -- files -------------------------------------------------------------------------------------


def make_random_file(path: Path, size: int, piece: int = 8 * MiB) -> Path:
    """A file of random bytes (incompressible, no duplicate pieces); one left by an earlier
    run in the same --workdir is reused when its size is right."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_file() and path.stat().st_size == size:
        return path
    with path.open("wb") as f:
        left = size
        while left > 0:
            n = min(piece, left)
            f.write(os.urandom(n))
            left -= n
    return path


def make_sparse_file(path: Path, size: int) -> Path:
    """A sparse file (reads as zeros, costs no disk): fine where content does not matter."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        f.truncate(size)
    return path


def make_small_files(folder: Path, count: int, size: int) -> Path:
    """`count` random files of `size` (reused from an earlier run when their size is right)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        path = folder / f"f{i:05d}.bin"
        if not (path.is_file() and path.stat().st_size == size):
            path.write_bytes(os.urandom(size))
    return folder


def warm(paths: list[Path]) -> None:
    """Read files once so every side meets them in the page cache ("cached")."""
    for p in paths:
        files = sorted(p.rglob("*")) if p.is_dir() else [p]
        for f in files:
            if f.is_file():
                with f.open("rb") as fh:
                    while fh.read(8 * MiB):
                        pass


# -- servers -----------------------------------------------------------------------------------


@dataclass
class Backend:
    url: str
    token: str
    kind: str
    root: Path
    proc: subprocess.Popen[str] | None = field(default=None, repr=False)


@contextlib.contextmanager
def embedded_server(root: Path, extra: tuple[str, ...] = ()) -> Iterator[Backend]:
    """`synapse-tui serve` in its own process on a free loopback port, fresh storage root
    (`extra`: more `serve` options)."""
    root.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    # Output goes to a file, never an unread pipe: a full pipe would block the server.
    log_path = root.parent / f"{root.name}.log"
    log = log_path.open("w")
    proc = subprocess.Popen(
        cli("serve", "--port", "0", "--token", TOKEN, "--root", str(root), *extra),
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        match = None
        while match is None:
            match = re.search(r"at (http://\S+)", log_path.read_text(errors="replace"))
            if match is None:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"synapse-tui serve did not start: {log_path.read_text()[-2000:]}"
                    )
                time.sleep(0.05)
        yield Backend(match.group(1), TOKEN, "embedded", root, proc)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        log.close()


@contextlib.contextmanager
def drf_server(tmp: Path) -> Iterator[Backend]:
    """The real drf-chunked-upload 0.6.0 (Django under uvicorn), from tests/harness/drf.py."""
    from tests.harness.drf import run_drf_server

    tmp.mkdir(parents=True, exist_ok=True)
    with run_drf_server(tmp) as srv:
        yield Backend(srv.url, srv.token, "drf", srv.media_root)


# -- the official client's interpreter ---------------------------------------------------------


def sdk_python() -> tuple[str | None, str]:
    """(interpreter with synapse-sdk, how it was found) or (None, why not). The bench, run by
    hand, builds the environment when missing (tests/harness/sdk_env.py; never in the home)."""
    from tests.harness import sdk_env

    found, how = sdk_env.find()
    if found is not None:
        return str(found), how
    if os.environ.get(sdk_env.ENV_VAR):
        return None, how
    say(f"building {sdk_env.DEFAULT_VENV} with synapse-sdk (once)")
    try:
        return str(sdk_env.build()), f"built {sdk_env.DEFAULT_VENV}"
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        return None, f"could not build the synapse-sdk environment: {exc}"


def sdk_upload(python: str, backend: Backend, chunk: int, paths: list[Path]) -> Measured:
    driver = Path(__file__).with_name("sdk_driver.py")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNAPSE_")}
    env.pop("PYTHONPATH", None)
    cmd = [python, str(driver), backend.url, backend.token, str(chunk), *map(str, paths)]
    return run_measured(cmd, env=env).check("synapse-sdk driver")
