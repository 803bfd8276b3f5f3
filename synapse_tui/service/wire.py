"""The engine's wire protocol: versioned NDJSON over a Unix socket, typed both ways."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from typing import Any, ClassVar

from synapse_tui.engine.events import (
    BackendState,
    Event,
    FatalStop,
    JobDone,
    JobElsewhere,
    JobFailed,
    JobProgress,
    JobQueued,
    JobRetrying,
    JobSkipped,
    JobState,
    JobStateChanged,
    LogMessage,
    ScanProgress,
    TotalProgress,
    UnitRegistered,
)

VERSION = 1
# One line in either direction; a longer one is a protocol error (the peer is dropped).
MAX_LINE = 1 << 20

# Engine events on the wire: `{"event": KIND, **fields}`; KIND is the name `--json`
# already prints where there is one (file_done, file_failed, ...), the fields are the
# dataclass's own (so `--json`'s keys, plus job_id and a few more).
EVENT_KINDS: dict[type[Event], str] = {
    JobQueued: "file_queued",
    JobDone: "file_done",
    JobFailed: "file_failed",
    JobSkipped: "file_skipped",
    UnitRegistered: "unit_created",
    TotalProgress: "progress",
    ScanProgress: "scan",
    LogMessage: "log",
    JobStateChanged: "job_state",
    JobProgress: "job_progress",
    FatalStop: "fatal",
    JobRetrying: "job_retrying",  # a backoff: the dashboard's `retry 3/12 in 40s`
    BackendState: "backend",  # reachable, or failing since (the dashboard's header)
    JobElsewhere: "file_elsewhere",  # another synapse-tui process drives it
}
EVENT_TYPES: dict[str, type[Event]] = {kind: cls for cls, kind in EVENT_KINDS.items()}


class WireError(ValueError):
    """A line that is not valid protocol: the peer is dropped."""


def encode(obj: dict[str, Any]) -> bytes:
    """One line of NDJSON. ASCII-only, so file names that are not UTF-8 (carried as
    surrogate escapes, `os.fsdecode`) survive the trip."""
    line = json.dumps(obj, ensure_ascii=True, separators=(",", ":")).encode() + b"\n"
    if len(line) > MAX_LINE:
        raise WireError(f"line of {len(line)} bytes is over the {MAX_LINE} limit")
    return line


def decode(line: bytes) -> dict[str, Any]:
    if len(line) > MAX_LINE:
        raise WireError("line too long")
    try:
        obj = json.loads(line)
    except ValueError as exc:
        raise WireError(f"not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise WireError("a line must hold a JSON object")
    return obj


_FIELD_NAMES: dict[type[Event], tuple[str, ...]] = {}


def event_to_wire(event: Event) -> dict[str, Any]:
    cls = type(event)
    names = _FIELD_NAMES.get(cls)
    if names is None:  # dataclasses.fields() is slow: once a class, not once an event
        names = _FIELD_NAMES[cls] = tuple(f.name for f in dataclasses.fields(event))
    out: dict[str, Any] = {"event": EVENT_KINDS[cls]}
    for name in names:
        value = getattr(event, name)
        out[name] = value.value if isinstance(value, JobState) else value
    return out


def event_from_wire(obj: dict[str, Any]) -> Event | None:
    """The engine event a line carries, or None for the service's own events."""
    cls = EVENT_TYPES.get(obj.get("event", ""))
    if cls is None:
        return None
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {k: v for k, v in obj.items() if k in names}
    if cls is JobStateChanged:
        kwargs["state"] = JobState(kwargs["state"])
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise WireError(f"bad {obj.get('event')} event: {exc}") from None


# -- commands ---------------------------------------------------------------------------------


@dataclass
class Command:
    """A request from a client; `{"cmd": NAME, "id": n, **fields}` on the wire."""

    NAME: ClassVar[str] = ""

    def to_wire(self, request_id: int) -> dict[str, Any]:
        return {"cmd": self.NAME, "id": request_id, **dataclasses.asdict(self)}


@dataclass
class Hello(Command):
    """First line of every client. `role`: dashboard, upload, attach or control."""

    NAME: ClassVar[str] = "hello"
    version: int = VERSION
    role: str = "control"
    pid: int = field(default_factory=os.getpid)


@dataclass
class Add(Command):
    """Scan and queue paths (file names as `os.fsdecode` strings). `follow`: this
    connection gets the events of these jobs and a `batch_done` when they settle."""

    NAME: ClassVar[str] = "add"
    paths: list[str] = field(default_factory=list)
    force: bool = False
    priority: int = 0
    chunk_size: int | None = None
    follow: bool = True
    collection: int | str | None = None  # an id or a name, as `--collection` takes it
    spec: str | None = None
    group_by_stem: bool = False
    spec_map: str = ""
    meta: list[str] = field(default_factory=list)
    # --include/--exclude as [["include"|"exclude", pattern], ...] in order (PathFilter).
    # An engine without the "filters" feature (its hello answer) would ignore them.
    filters: list[list[str]] = field(default_factory=list)
    # The event kinds the follower shows (None: all); the engine leaves the others out of
    # its stream: per file the state changes are two lines more to encode, send and parse.
    events: list[str] | None = None


@dataclass
class Resume(Command):
    """Queue the journal's unfinished jobs of the engine's host (paused ones too)."""

    NAME: ClassVar[str] = "resume"
    follow: bool = True
    keep_paused: bool = False  # jobs paused by a client's command stay paused (a dashboard)
    events: list[str] | None = None  # as Add's


@dataclass
class Control(Command):
    """pause | resume | cancel | retry | drain | undrain, on `job` (an id), a `batch`
    (this connection's) or everything (neither given)."""

    NAME: ClassVar[str] = "control"
    action: str = "pause"
    job: int | None = None
    batch: int | None = None


@dataclass
class Set(Command):
    """Engine settings (kept in the journal across restarts); None leaves one as is.
    `bwlimit` 0 means no limit."""

    NAME: ClassVar[str] = "set"
    concurrency: int | None = None
    bwlimit: float | None = None
    job: int | None = None
    priority: int | None = None
    persist: bool = True  # False: for this engine's life only (a command line's --bwlimit)


@dataclass
class ListJobs(Command):
    """A window of the queue, in job id order, optionally of one state, plus the totals."""

    NAME: ClassVar[str] = "list"
    offset: int = 0
    limit: int = 100
    state: str | None = None
    scope: str = "journal"  # "journal": every job of the host; "engine": what it holds
    # scope "engine" only: the window found by job id (`at`, or the first active job with
    # `follow`), `before` rows before it; the position counted from a known one.
    at: int | None = None
    follow: bool = False
    before: int = 0
    known_id: int | None = None
    known_index: int | None = None


@dataclass
class Collections(Command):
    """The backend's data collections (asked by the engine, which has the token)."""

    NAME: ClassVar[str] = "collections"


@dataclass
class JobInfo(Command):
    NAME: ClassVar[str] = "job"
    job: int = 0


@dataclass
class Subscribe(Command):
    """Every event of the engine from now on (progress coalesced, latest wins)."""

    NAME: ClassVar[str] = "subscribe"


@dataclass
class Status(Command):
    NAME: ClassVar[str] = "status"


@dataclass
class Stop(Command):
    """Start nothing new, let in-flight chunks finish (a few seconds at most), exit."""

    NAME: ClassVar[str] = "stop"


@dataclass
class Configure(Command):
    """New backend settings: the engine pauses its jobs, reconnects, resumes them. The
    only command that carries secrets, and only when the client has them to give."""

    NAME: ClassVar[str] = "configure"
    host: str | None = None
    access_token: str | None = None
    user_token: str | None = None
    tenant: str | None = None
    # None: the engine's own kept (as the proxy, strategy and retries); ca_bundle "": none.
    insecure: bool | None = None
    ca_bundle: str | None = None
    # The proxy (a URL or "off"); "": the environment's; None: the engine's own kept.
    proxy: str | None = None
    # With proxy "": the client's environment's proxy variables (engine/proxy.py
    # routing_table); None: the engine's own environment's.
    proxy_env: dict[str, str] | None = None
    strategy: str | None = None  # auto, presigned or chunked
    retries: int | None = None


@dataclass
class StatusJobs(Command):
    """A page of `synapse-tui status`'s rows, every host's, in its order (priority, id; or
    id for `every`), after a cursor: the client prints one page while it asks for the next."""

    NAME: ClassVar[str] = "status_jobs"
    every: bool = False  # finished jobs and failures since uploaded too (`status --all`)
    after_priority: int | None = None  # the cursor: `next` of the page before (None: start)
    after_id: int = 0
    limit: int = 500


@dataclass
class Prune(Command):
    """Forget finished, failed and cancelled jobs (`status --prune`), in the engine."""

    NAME: ClassVar[str] = "prune"


@dataclass
class ScanStart(Command):
    """Pre-scan `paths` (`synapse-tui scan`); `host`: whose ledger says what was uploaded.
    The client then pulls the findings with `scan_page`."""

    NAME: ClassVar[str] = "scan"
    paths: list[str] = field(default_factory=list)
    host: str | None = None
    filters: list[list[str]] = field(default_factory=list)  # as Add's


@dataclass
class ScanPage(Command):
    """The next findings of this connection's `scan` (it waits while the client reads)."""

    NAME: ClassVar[str] = "scan_page"
    scan: int = 0
    limit: int = 500


_ALL: tuple[type[Command], ...] = (Hello, Add, Resume, Control, Set, ListJobs, JobInfo)
_ALL += (Subscribe, Status, Stop, Configure, Collections, StatusJobs, Prune, ScanStart)
_ALL += (ScanPage,)
COMMANDS: dict[str, type[Command]] = {cls.NAME: cls for cls in _ALL}


def command_from_wire(obj: dict[str, Any]) -> tuple[int, Command]:
    """(request id, command); unknown fields are ignored (newer clients), unknown commands
    and wrong types are a WireError."""
    cls = COMMANDS.get(str(obj.get("cmd")))
    if cls is None:
        raise WireError(f"unknown command {obj.get('cmd')!r}")
    request_id = obj.get("id")
    if not isinstance(request_id, int):
        raise WireError("a command needs an integer id")
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in obj:
            kwargs[f.name] = obj[f.name]
    try:
        command = cls(**kwargs)
    except TypeError as exc:
        raise WireError(f"bad {cls.NAME}: {exc}") from None
    _check_types(command)
    return request_id, command


_SIMPLE = {"int": int, "str": str, "bool": bool, "float": (int, float)}


def _check_types(command: Command) -> None:
    """The annotations are strings (`from __future__`); check the simple ones."""
    for f in dataclasses.fields(command):
        value = getattr(command, f.name)
        kinds = [k.strip() for k in str(f.type).split("|")]
        if value is None and "None" in kinds:
            continue
        if kinds[0].startswith("list[list["):  # e.g. Add.filters: pairs of strings
            if not isinstance(value, list) or not all(
                isinstance(v, list) and all(isinstance(x, str) for x in v) for v in value
            ):
                raise WireError(f"{command.NAME}.{f.name} must be a list of lists of strings")
            continue
        if kinds[0].startswith("list["):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise WireError(f"{command.NAME}.{f.name} must be a list of strings")
            continue
        allowed: tuple[type, ...] = ()
        for k in kinds:
            t = _SIMPLE.get(k)
            if t is not None:
                allowed += t if isinstance(t, tuple) else (t,)
        ok = isinstance(value, allowed) and not (isinstance(value, bool) and bool not in allowed)
        if allowed and not ok:
            raise WireError(f"{command.NAME}.{f.name} has the wrong type")


def reply(request_id: int, **fields: Any) -> dict[str, Any]:
    return {"reply": request_id, "ok": True, **fields}


def refusal(request_id: int, error: str, kind: str = "error") -> dict[str, Any]:
    """`kind`: "config" (the client exits 2, as for a bad option) or "error"."""
    return {"reply": request_id, "ok": False, "error": error, "kind": kind}
