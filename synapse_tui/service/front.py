"""Headless front ends of the engine: `upload`/`resume` (follow or detach), `attach`, `engine`."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from synapse_tui.config import Settings, require_backend
from synapse_tui.engine.errors import ConfigError
from synapse_tui.engine.events import (
    Event,
    JobDone,
    JobFailed,
    JobQueued,
    JobSkipped,
    ScanProgress,
    UnitRegistered,
)
from synapse_tui.engine.names import absolute_text, display_path
from synapse_tui.engine.proxy import routing_table
from synapse_tui.headless import Reporter, catch_interrupts, make_reporter
from synapse_tui.reports import warn_no_files
from synapse_tui.service import engine_settings
from synapse_tui.service.client import EngineClient, EngineUnavailable, Refused, connect
from synapse_tui.service.spawn import (
    LOG_NAME,
    engine_alive,
    fingerprint,
    proxy_id,
    socket_answers,
    start_engine,
)
from synapse_tui.service.wire import (
    Add,
    Configure,
    Control,
    Resume,
    Set,
    Status,
    Stop,
    Subscribe,
    event_from_wire,
)

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
# The event kinds the reporters show (headless.py): the engine leaves the rest of the
# batch's events (job_state, job_progress, ...: two or three more lines a file) out.
SHOWN = [
    "file_done",
    "file_failed",
    "file_skipped",
    "file_elsewhere",
    "unit_created",
    "progress",
    "scan",
    "log",
    "fatal",
]


def shown_events(json_mode: bool) -> list[str]:
    return [*SHOWN, "file_queued"] if json_mode else list(SHOWN)


def run_via_engine(settings: Settings, args: argparse.Namespace) -> int:
    """`upload` / `resume` through the engine: the same output and exit codes as the
    in-process run, but the uploads belong to the engine and outlive this command."""
    require_backend(settings)  # as the in-process run: a missing backend is exit 2 at once
    try:
        # Before the event loop and any thread: the engine can be a fork of this process.
        # The engine runs in "/": a relative --ca-bundle is this folder's.
        settings.ca_bundle = engine_settings.resolved(settings.ca_bundle)
        if not socket_answers(Path(settings.state_dir)):
            start_engine(settings, fork=True)
        reporter = make_reporter(args.json, settings.credentials.secrets(), args.verbose)
        return asyncio.run(_follow(settings, args, reporter))
    except Refused as exc:
        if exc.kind == "config":
            raise ConfigError(str(exc)) from None
        sys.stderr.write(f"synapse-tui: error: {exc}\n")
        return EXIT_FAILED
    except EngineUnavailable as exc:
        raise ConfigError(str(exc)) from None


async def _adopt(client: EngineClient, settings: Settings) -> None:
    """The engine must upload where and as this command would, with its credentials. An
    idle one is reconfigured (this command gives its own credentials); a busy one is not
    taken. A setting of engine_settings.KEYS this command does not name stays the engine's."""
    status = client.status
    same = status.get("host") == settings.host and status.get("credentials") == fingerprint(
        settings.credentials
    )
    other_proxy = status.get("proxy") != proxy_id(settings.proxy)  # this command's environment
    differ = engine_settings.differing(status, settings)
    if same and not other_proxy and not differ:
        return
    if status.get("active") or status.get("queued") or status.get("clients", 1) > 1:
        phrases = ["another proxy"] if other_proxy else []
        phrases += engine_settings.describe(status, differ)
        works = f"works for {status.get('host')}" if not same else "uses " + " and ".join(phrases)
        raise ConfigError(
            f"the engine of this state folder {works}; wait for it, "
            "stop it (`synapse-tui engine stop`), or use --foreground or another --state-dir"
        )
    c = settings.credentials
    # A blank --proxy is the environment's (as Proxies reads it): its variables go too.
    explicit = settings.proxy if settings.proxy and settings.proxy.strip() else None
    # Another host: this command's settings, all of them; the same: those it names.
    given = {k: getattr(settings, k) for k in engine_settings.KEYS} if not same else differ
    if "ca_bundle" in given:
        given["ca_bundle"] = engine_settings.resolved(given["ca_bundle"]) or ""  # "": none
    client.status = await client.request(
        Configure(
            settings.host,
            c.access_token,
            c.user_token,
            c.tenant,
            proxy=explicit or "",  # "": the environment's: this command's own
            proxy_env=routing_table(None) if explicit is None else None,
            **given,
        )
    )


def as_given(paths: list[str]) -> Callable[[str], str]:
    """The engine scans absolute paths (it runs in another folder); a path the user gave
    relative is shown as given, as the in-process run shows it."""
    prefixes = [
        (display_path(os.fsencode(absolute_text(p))), display_path(os.fsencode(p)))
        for p in paths
        if not os.path.isabs(p)
    ]

    def back(text: str) -> str:
        for absolute, given in prefixes:
            if text == absolute or text.startswith(absolute + "/"):
                return given + text[len(absolute) :]
        return text

    return back


def _as_given(paths: list[str]) -> Callable[[Event], Event]:
    """Events whose paths are shown as given (see as_given)."""
    prefixes = [p for p in paths if not os.path.isabs(p)]
    back = as_given(paths)

    def rewrite(event: Event) -> Event:
        if not prefixes:
            return event
        if isinstance(event, JobSkipped):
            reason = event.reason
            if reason.startswith("duplicate of "):
                reason = "duplicate of " + back(reason.removeprefix("duplicate of "))
            return dataclasses.replace(event, path=back(event.path), reason=reason)
        if isinstance(event, UnitRegistered):
            return dataclasses.replace(event, paths=[back(p) for p in event.paths])
        if isinstance(event, JobQueued | JobDone | JobFailed):
            return dataclasses.replace(event, path=back(event.path))
        return event

    return rewrite


async def _follow(settings: Settings, args: argparse.Namespace, reporter: Reporter) -> int:
    client = await connect(settings, "upload")
    try:
        # Refused by an engine that would ignore them before anything of it is changed.
        filters = engine_settings.filters_for(client.status, args)
        await _adopt(client, settings)
        outcome: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        scanned = asyncio.Event()
        shown = _as_given(list(getattr(args, "paths", None) or []))

        def on_event(obj: dict[str, Any]) -> None:
            if obj.get("event") == "batch_done":
                if not outcome.done():
                    outcome.set_result(obj)
                return
            event = event_from_wire(obj)
            if event is not None:
                reporter(shown(event))
                if isinstance(event, ScanProgress) and event.done:
                    if event.files == 0 and event.failed == 0 and args.command == "upload":
                        warn_no_files(list(args.paths), args.filters)  # as in-process
                    scanned.set()

        client.on_event = on_event
        if getattr(args, "concurrency", None):
            await client.request(Set(concurrency=args.concurrency, persist=False))
        if getattr(args, "bwlimit", None) is not None:
            await client.request(Set(bwlimit=args.bwlimit, persist=False))
        if args.command == "upload":
            batch = await client.request(
                Add(
                    paths=[absolute_text(p) for p in args.paths],
                    force=args.force,
                    priority=args.priority,
                    chunk_size=args.chunk_size,
                    collection=args.collection,
                    spec=args.spec,
                    group_by_stem=args.group_by_stem,
                    spec_map=args.spec_map,
                    meta=list(args.meta),
                    filters=filters,
                    events=shown_events(args.json),
                )
            )
        else:
            batch = await client.request(Resume(events=shown_events(args.json)))
            if batch.get("count") == 0 and not args.json:
                sys.stdout.write("nothing to resume\n")
        if getattr(args, "detach", False):
            if args.command == "upload":
                await _wait(scanned, client)
            return _detached(reporter, client.status, args.json)
        return await _until_done(client, reporter, batch["batch"], outcome, settings)
    finally:
        await client.close()


async def _wait(event: asyncio.Event, client: EngineClient) -> None:
    waiter = asyncio.ensure_future(event.wait())
    gone = asyncio.ensure_future(client.closed.wait())
    await asyncio.wait({waiter, gone}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    gone.cancel()


def _detached(reporter: Reporter, status: dict[str, Any], json_mode: bool) -> int:
    reporter.flush()
    pid = status.get("pid")
    if json_mode:
        sys.stdout.write(json.dumps({"event": "detached", "engine_pid": pid}) + "\n")
    else:
        sys.stdout.write(
            f"queued in the engine (pid {pid}); `synapse-tui attach` follows the uploads, "
            "`synapse-tui status` shows them\n"
        )
    sys.stdout.flush()
    return EXIT_OK


async def _until_done(
    client: EngineClient,
    reporter: Reporter,
    batch_id: int,
    outcome: asyncio.Future[dict[str, Any]],
    settings: Settings,
) -> int:
    interrupted = catch_interrupts(asyncio.get_running_loop())
    stop = asyncio.ensure_future(interrupted.wait())
    gone = asyncio.ensure_future(client.closed.wait())
    waits: set[asyncio.Future[Any]] = {outcome, stop, gone}
    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    stop.cancel()
    gone.cancel()
    if interrupted.is_set() and not outcome.done():
        # Ctrl-C pauses this command's files (each at its next chunk boundary) and leaves
        # the rest of the engine alone.
        left = 0
        try:
            answer = await client.request(Control("pause", batch=batch_id), timeout=10.0)
            left = int(answer.get("left", 0))
        except (Refused, EngineUnavailable, TimeoutError):
            pass
        reporter.flush()
        sys.stderr.write(
            f"\ninterrupted: {left} unfinished file(s) saved; "
            "run `synapse-tui resume` to finish them\n"
        )
        return EXIT_INTERRUPTED
    if not outcome.done():
        reporter.flush()
        log = os.path.join(settings.state_dir, LOG_NAME)
        sys.stderr.write(
            f"synapse-tui: error: the engine went away (see {log}); "
            "`synapse-tui resume` finishes the unfinished files\n"
        )
        return EXIT_FAILED
    done = outcome.result()
    left = int(done.get("left") or 0)
    if done.get("stopped"):
        reporter.error_line(f"the engine stopped ({done['stopped']}): {left} file(s) left")
    extra = left - reporter.summary.resumable
    if extra > 0:  # paused by someone else, or by the engine stopping: resumable
        reporter.summary.resumable += extra
    reporter.finish()
    return reporter.summary.exit_code


# -- attach and engine ------------------------------------------------------------------------


def since(status: dict[str, Any]) -> str:
    started = time.strftime("%H:%M", time.localtime(float(status.get("started", 0))))
    return f"the engine running since {started}, {status.get('active', 0)} active"


def cmd_attach(settings: Settings, args: argparse.Namespace) -> int:
    reporter = make_reporter(args.json, settings.credentials.secrets(), args.verbose)

    async def attach() -> int:
        try:
            client = await connect(settings, "attach", start=False)
        except EngineUnavailable as exc:
            sys.stderr.write(f"{exc}\n")
            return EXIT_OK
        try:
            idle = asyncio.Event()

            def on_event(obj: dict[str, Any]) -> None:
                if obj.get("event") == "engine_idle":
                    idle.set()
                    return
                event = event_from_wire(obj)
                if event is not None:
                    reporter(event)

            client.on_event = on_event
            status = await client.request(Subscribe())
            if not args.json:
                sys.stderr.write(f"attached to {since(status)}\n")
            if status.get("idle"):
                idle.set()
            loop = asyncio.get_running_loop()
            stop = asyncio.Event()
            loop.add_signal_handler(signal.SIGINT, stop.set)
            waits = [asyncio.ensure_future(e.wait()) for e in (idle, stop, client.closed)]
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for w in waits:
                w.cancel()
            reporter.finish()
            return EXIT_INTERRUPTED if stop.is_set() else reporter.summary.exit_code
        finally:
            await client.close()

    return asyncio.run(attach())


def cmd_engine(settings: Settings, args: argparse.Namespace) -> int:
    async def run() -> int:
        try:
            client = await connect(settings, "control", start=False)
        except EngineUnavailable:
            if args.json:
                sys.stdout.write(json.dumps({"event": "engine", "running": False}) + "\n")
            else:
                sys.stdout.write(f"no engine runs for {settings.state_dir}\n")
            return EXIT_OK
        try:
            if args.action == "stop":
                await client.request(Stop())
                await asyncio.wait_for(client.closed.wait(), 60.0)
                deadline = time.monotonic() + 30.0
                while engine_alive(settings.state_dir):  # until the process has left
                    if time.monotonic() > deadline:
                        sys.stderr.write("synapse-tui: the engine did not exit in 30 s\n")
                        return EXIT_FAILED
                    await asyncio.sleep(0.02)
                sys.stdout.write(f"engine {client.status.get('pid')} stopped\n")
                return EXIT_OK
            status = await client.request(Status())
            for key in ("reply", "ok"):
                status.pop(key, None)
            if args.json:
                sys.stdout.write(json.dumps({"event": "engine", "running": True, **status}) + "\n")
                return EXIT_OK
            bw = status.get("bwlimit")
            sys.stdout.write(
                f"engine pid {status['pid']}: {since(status)}, {status.get('jobs', 0)} jobs, "
                f"{status.get('clients', 0) - 1} other client(s)\n"
                f"  host {status.get('host')}{' (local backend)' if status.get('local') else ''}\n"
                f"  concurrency {status.get('concurrency')}, bandwidth "
                f"{'no limit' if not bw else f'{bw:.0f} B/s'}"
                f"{', draining' if status.get('draining') else ''}\n"
            )
            if status.get("stopped"):
                sys.stdout.write(f"  stopped: {status['stopped']}\n")
            return EXIT_OK
        finally:
            await client.close()

    return asyncio.run(run())
