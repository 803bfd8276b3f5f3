"""Finding and starting the engine: light (no engine imports), as every front end needs it."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Iterator, Mapping
from pathlib import Path

from synapse_tui import paths
from synapse_tui.config import Settings
from synapse_tui.engine.credentials import Credentials

SOCKET_NAME = "engine.sock"
ENGINE_LOCK = "engine.lock"  # held (flock) by the live engine, its pid inside
START_LOCK = "engine.start.lock"
LOG_NAME = "engine.log"
LOG_LIMIT = 4 << 20  # rotated past this (engine.log -> engine.log.1)
# How often a front end that started the engine looks for its socket: every look is one
# failed connect (a few microseconds), and the first upload waits for the one that succeeds.
START_POLL = 0.005
SETTINGS_ENV = "SYNAPSE_TUI_ENGINE_SETTINGS"  # the settings, credentials included: never argv
IDLE_ENV = "SYNAPSE_TUI_ENGINE_IDLE"  # seconds an engine a dashboard used stays idle
CLIENT_TIMEOUT_ENV = "SYNAPSE_TUI_ENGINE_CLIENT_TIMEOUT"  # a client not reading: dropped
FOREGROUND_ENV = "SYNAPSE_TUI_FOREGROUND"
EXIT_ALREADY = 3  # the engine's exit status when another engine holds the lock
START_TIMEOUT = 30.0


class EngineUnavailable(Exception):
    """No engine answers (and none was to be started, or it could not start)."""


class UnsafeStateFile(EngineUnavailable):
    """A file of the engine's in the state folder is a symbolic link, or not this user's
    regular file: refused, never followed (one line; the CLI exits 2)."""


_OPEN_FLAGS = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


def open_state_file(path: Path, flags: int) -> int:
    """Open (or create, 0600) one of the engine's files in the state folder without
    following a symbolic link: in a state folder others can write to, a planted link
    would aim the engine's writes (its log, its locks) at a file of their choosing.
    Also refused: anything but a regular file of this user (a FIFO would block)."""
    try:
        fd = os.open(path, flags | _OPEN_FLAGS, 0o600)
    except FileNotFoundError:
        raise
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafeStateFile(
                f"{path} is a symbolic link: not followed; remove it, or use a --state-dir "
                "of your own"
            ) from None
        with contextlib.suppress(OSError):
            if not stat.S_ISREG(os.lstat(path).st_mode):  # a FIFO with no reader: ENXIO
                raise UnsafeStateFile(_not_yours(path)) from None
        raise EngineUnavailable(f"cannot open {path}: {exc.strerror or exc}") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid():
        os.close(fd)
        raise UnsafeStateFile(_not_yours(path))
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    return fd


class SocketPathTooLong(EngineUnavailable):
    """The state folder is too deep for a socket address, and /proc cannot shorten it."""


def _not_yours(path: Path) -> str:
    return f"{path} is not a file of yours: not used; remove it, or use a --state-dir of your own"


def check_socket_path(path: Path) -> None:
    """The socket is connected to only where it is: a symbolic link in its place could
    lead this front end to another engine (another state folder's)."""
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISLNK(os.lstat(path).st_mode):
            raise UnsafeStateFile(
                f"{path} is a symbolic link: not followed; remove it, or use a --state-dir "
                "of your own"
            )


def foreground_requested() -> bool:
    return os.environ.get(FOREGROUND_ENV, "") not in ("", "0")


def fingerprint(credentials: Credentials) -> str:
    """A short digest of the credentials: clients compare it with theirs, so the secrets
    never cross the socket to find out whether the engine has the same ones."""
    text = "\0".join(s or "" for s in credentials.secrets())
    return hashlib.sha256(b"synapse-tui-credentials\0" + text.encode()).hexdigest()[:16]


def proxy_id(proxy: str | None, env: Mapping[str, str] | None = None) -> str:
    """A short digest of how requests are routed: the configured proxy, else `env`'s proxy
    variables (None: this process's environment). A proxy URL may hold a password: a front
    end compares digests, as it does the credentials' ones."""
    from synapse_tui.engine.proxy import routing_table  # not at import: this module is light

    text = json.dumps(routing_table(proxy, env), sort_keys=True)
    return hashlib.sha256(b"synapse-tui-proxy\0" + text.encode()).hexdigest()[:16]


def settings_from_env() -> Settings:
    """The front end's resolved settings, taken out of the environment at once."""
    raw = json.loads(os.environ.pop(SETTINGS_ENV, "{}") or "{}")
    s = Settings()
    s.host = raw.get("host")
    s.credentials = Credentials(raw.get("access_token"), raw.get("user_token"), raw.get("tenant"))
    s.insecure = bool(raw.get("insecure"))
    s.ca_bundle = raw.get("ca_bundle")
    for key in ("chunk_size", "concurrency", "retries", "upload_nice"):
        if isinstance(raw.get(key), int):
            setattr(s, key, raw[key])
    bw = raw.get("bwlimit")
    s.bwlimit = float(bw) if isinstance(bw, int | float) and bw > 0 else None
    s.proxy = raw["proxy"] if isinstance(raw.get("proxy"), str) else None
    if raw.get("strategy") in ("auto", "presigned", "chunked"):
        s.strategy = raw["strategy"]
    return s


def settings_to_env(settings: Settings) -> str:
    c = settings.credentials
    return json.dumps(
        {
            "host": settings.host,
            "access_token": c.access_token,
            "user_token": c.user_token,
            "tenant": c.tenant,
            "insecure": settings.insecure,
            "ca_bundle": settings.ca_bundle,
            "chunk_size": settings.chunk_size,
            "concurrency": settings.concurrency,
            "bwlimit": settings.bwlimit,
            "retries": settings.retries,
            "upload_nice": settings.upload_nice,
            "proxy": settings.proxy,
            "strategy": settings.strategy,
        }
    )


SUN_PATH_MAX = 107  # bytes in a socket's address, its NUL excluded (Linux's sun_path: 108)
PROC_FD = "/proc/self/fd"  # a module global: a test points it elsewhere, not os.path.isdir


@contextlib.contextmanager
def socket_address(state: Path) -> Iterator[str]:
    """The address to bind or connect the engine's socket by: its path when that fits in
    a socket address; else, for a deep --state-dir, the same file reached through
    /proc/self/fd/N/ with the folder held open as N for as long as the address is used
    (the limit is on the address given, not on where the file lives)."""
    path = state / SOCKET_NAME
    if len(os.fsencode(path)) <= SUN_PATH_MAX:
        yield str(path)
        return
    if not os.path.isdir(PROC_FD):
        room = SUN_PATH_MAX - len(SOCKET_NAME) - 1
        raise SocketPathTooLong(
            f"the state folder's path is {len(os.fsencode(state))} bytes, too long for the "
            f"engine's socket (at most {room} here): give a shorter --state-dir, or use "
            "--foreground"
        )
    fd = os.open(state, getattr(os, "O_PATH", os.O_RDONLY) | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield f"{PROC_FD}/{fd}/{SOCKET_NAME}"
    finally:
        os.close(fd)


def socket_answers(state: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            with socket_address(state) as address:
                sock.connect(address)
        except (OSError, EngineUnavailable):
            return False
    return True


def engine_alive(state: Path) -> bool:
    """Whether a live engine holds the engine lock (starting, serving or stopping)."""
    try:
        fd = open_state_file(state / ENGINE_LOCK, os.O_RDONLY)
    except (FileNotFoundError, UnsafeStateFile):
        return False  # no engine, or none could have started (it refuses that file too)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def start_engine(settings: Settings, local_backend: bool = False, fork: bool = False) -> None:
    """Start the engine unless another front end did meanwhile: under the start lock,
    only one front end at a time looks and starts, so two at once get one engine.

    `fork`: the engine is a fork of this process when that is safe (no other thread), not
    a fresh interpreter: see `_fork_engine`."""
    state = paths.private_dir(Path(settings.state_dir))
    fd = open_state_file(state / START_LOCK, os.O_RDWR | os.O_CREAT)
    try:
        _lock(fd, START_TIMEOUT)
        if socket_answers(state):
            return
        # The engine would refuse these too, in its log: said here, in one line. A linked
        # socket would be replaced by the new engine's: refused before it starts.
        check_socket_path(state / SOCKET_NAME)
        os.close(open_state_file(state / ENGINE_LOCK, os.O_RDONLY | os.O_CREAT))
        log_path = state / LOG_NAME
        with contextlib.suppress(OSError):
            if log_path.lstat().st_size > LOG_LIMIT:
                os.replace(log_path, log_path.with_name(LOG_NAME + ".1"))
        args = ["--state-dir", str(state)]
        args += ["--idle-timeout", os.environ.get(IDLE_ENV, "300")]
        args += ["--client-timeout", os.environ.get(CLIENT_TIMEOUT_ENV, "20")]
        if local_backend:
            args.append("--local-backend")
        log_fd = open_state_file(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        child: subprocess.Popen[bytes] | _Forked
        try:
            if fork and threading.active_count() == 1:
                child = _Forked(_fork_engine(args, settings, log_fd))
            else:
                env = dict(os.environ)
                env[SETTINGS_ENV] = settings_to_env(settings)
                child = subprocess.Popen(
                    [sys.executable, "-m", "synapse_tui.service", *args],
                    stdin=subprocess.DEVNULL,
                    stdout=log_fd,
                    stderr=log_fd,
                    env=env,
                    cwd="/",
                    start_new_session=True,  # no terminal, no SIGHUP, no Ctrl-C of ours
                    close_fds=True,
                )
        finally:
            os.close(log_fd)
        deadline = time.monotonic() + START_TIMEOUT
        while not socket_answers(state):
            code = child.poll()
            if code is not None and code != EXIT_ALREADY:  # another engine took the lock
                raise EngineUnavailable(f"the engine did not start (see {log_path})")
            if time.monotonic() > deadline:
                raise EngineUnavailable(f"the engine did not start in time (see {log_path})")
            time.sleep(START_POLL)
    finally:
        os.close(fd)  # releases the start lock


class _Forked:
    """`poll()` of a forked engine, as Popen's."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.code: int | None = None

    def poll(self) -> int | None:
        if self.code is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                return 1
            if pid:
                self.code = os.waitstatus_to_exitcode(status)
        return self.code


def _fork_engine(args: list[str], settings: Settings, log_fd: int) -> int:
    """The engine as a fork of this front end, which has imported much of what the engine
    needs: a start costs no new interpreter and none of those imports (0.1-0.15 s of CPU
    on the path to the first upload). Only from a process with one thread and no event
    loop yet: a fork copies the calling thread alone. The child is what
    `python -m synapse_tui.service` would be: its own session, stdin /dev/null, stdout and
    stderr to the log, cwd /, no file descriptor of ours (the start lock above all: a
    child holding it would block the next start), the settings in its environment."""
    settings_text = settings_to_env(settings)
    for stream in (sys.stdout, sys.stderr):  # nothing of ours is written twice
        with contextlib.suppress(Exception):
            stream.flush()
    # A Ctrl-C arriving around the fork must not raise in the child, which would then run
    # the front end's code: SIGINT is blocked across the fork, the child ignores it (the
    # engine's main keeps it ignored) before taking it back, the parent gets it as usual.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        pid = os.fork()
    except BaseException:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        raise
    if pid:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        return pid
    code = 1
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        os.setsid()
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.closerange(3, os.sysconf("SC_OPEN_MAX"))
        os.chdir("/")
        os.environ[SETTINGS_ENV] = settings_text
        from synapse_tui.service.__main__ import main

        code = main(args)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)  # never the front end's own exit path (its atexit, its output)


def _lock(fd: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise EngineUnavailable("another front end is starting the engine") from None
            time.sleep(0.02)
