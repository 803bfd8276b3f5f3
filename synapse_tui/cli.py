"""Command line: picks a front end (dashboard, headless commands, serve); imports the UI lazily."""

from __future__ import annotations

import argparse
import difflib
import os
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from synapse_tui import __version__
from synapse_tui.config import Settings, load_settings, redact
from synapse_tui.engine.errors import ConfigError, FatalError, SynapseError
from synapse_tui.engine.filters import PathFilter, add_filter_options
from synapse_tui.units import parse_rate, parse_size

if TYPE_CHECKING:  # the engine is imported when a command needs it: --help stays fast
    from synapse_tui.engine.events import Listener
    from synapse_tui.engine.protocol import ProtocolClient
    from synapse_tui.engine.scheduler import UploadManager

COMMANDS = (
    "upload",
    "resume",
    "scan",
    "status",
    "check",
    "collections",
    "serve",
    "attach",
    "engine",
)
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # usage errors: one line, exit 2
        self.print_usage(sys.stderr)
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(EXIT_USAGE)


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _rate(text: str) -> float | None:
    try:
        return parse_rate(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _count(text: str) -> int:
    """A whole number of at least 0 (retries)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more: {text}")
    return value


def _positive(text: str) -> int:
    """A whole number of at least 1 (files at once)."""
    value = _count(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more: {text}")
    return value


def _common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("backend")
    g.add_argument("--host", help="API root URL (env SYNAPSE_HOST)")
    g.add_argument("--token", dest="access_token", help="access token (env SYNAPSE_ACCESS_TOKEN)")
    g.add_argument("--user-token", help="user token (env SYNAPSE_PLUGIN_RUN_USER_TOKEN)")
    g.add_argument("--tenant", help="tenant (env SYNAPSE_PLUGIN_RUN_TENANT)")
    g.add_argument("--state-dir", help="journal folder (env SYNAPSE_TUI_STATE_DIR)")
    g.add_argument("--insecure", action="store_true", default=None, help="skip TLS verification")
    g.add_argument("--ca-bundle", help="CA bundle file for TLS verification")
    g.add_argument(
        "--proxy",
        metavar="URL",
        help="HTTP proxy for every request, or 'off' (default: HTTPS_PROXY, HTTP_PROXY, NO_PROXY)",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="also show informational lines")


def _transfer(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--concurrency",
        "-j",
        type=_positive,
        help="upload slots (default 4): each carries one large file or 4 small ones",
    )
    p.add_argument("--chunk-size", type=_size, help="chunk size, e.g. 50M (default 50M)")
    p.add_argument("--bwlimit", type=_rate, help="bandwidth limit per second, e.g. 20M")
    p.add_argument("--retries", type=_count, help="attempts per file without progress (default 12)")
    p.add_argument(
        "--strategy",
        choices=("auto", "presigned", "chunked"),
        help="straight to the backend's storage (presigned) or through the API (chunked); "
        "auto (default): presigned when the backend's storage takes it",
    )
    p.add_argument("--json", action="store_true", help="one JSON object per line on stdout")
    p.add_argument(
        "--foreground",
        action="store_true",
        help="upload in this process, not in the background engine "
        "(env SYNAPSE_TUI_FOREGROUND=1; for CI jobs and containers)",
    )


def _query_foreground(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--foreground",
        action="store_true",
        help="read the journal in this process, not through a running background engine "
        "(env SYNAPSE_TUI_FOREGROUND=1)",
    )


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The commands' parser; given the `command` being run, only that one's options are built
    where that saves start-up (the server's options import the server's configuration)."""
    parser = _Parser(
        prog="synapse-tui",
        description="Fast, resumable uploads to a Synapse backend. "
        "Without a command, opens the dashboard in DIR.",
    )
    parser.add_argument("--version", action="version", version=f"synapse-tui {__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)

    up = sub.add_parser("upload", help="upload files and folders")
    up.add_argument("paths", nargs="+", metavar="PATH")
    up.add_argument("--force", action="store_true", help="upload even what was uploaded before")
    up.add_argument("--priority", type=int, default=0, help="higher runs first")
    col = up.add_argument_group("data collection")
    col.add_argument(
        "--collection", metavar="ID|NAME", help="register each upload in this collection"
    )
    col.add_argument("--spec", help="the file specification the files fill")
    col.add_argument(
        "--group-by-stem", action="store_true", help="files sharing a stem make one data unit"
    )
    col.add_argument("--spec-map", default="", help="EXT=NAME,... spec by file extension")
    col.add_argument(
        "--meta", action="append", default=[], metavar="KEY=VALUE", help="meta of every unit"
    )
    up.add_argument(
        "--detach", action="store_true", help="return once queued; the engine uploads on"
    )
    add_filter_options(up)
    _transfer(up)
    _common(up)

    res = sub.add_parser("resume", help="finish the unfinished uploads in the journal")
    _transfer(res)
    _common(res)

    sc = sub.add_parser("scan", help="pre-scan: sizes, duplicates, already uploaded")
    sc.add_argument("paths", nargs="+", metavar="PATH")
    sc.add_argument(
        "--json",
        action="store_true",
        help="one JSON object per line on stdout: each finding, then the summary",
    )
    add_filter_options(sc)
    _query_foreground(sc)
    _common(sc)

    st = sub.add_parser("status", help="show the journal")
    st.add_argument("--json", action="store_true", help="one JSON object per job on stdout")
    st.add_argument(
        "--all",
        action="store_true",
        help="every job: finished ones, and failures a later run uploaded",
    )
    st.add_argument(
        "--prune",
        action="store_true",
        help="forget finished, failed and cancelled jobs (what was uploaded stays known)",
    )
    _query_foreground(st)
    _common(st)

    ck = sub.add_parser("check", help="pre-flight: auth, limits, disk, hash and upload rates")
    ck.add_argument("path", nargs="?", help="estimate the upload time of this path")
    ck.add_argument(
        "--concurrency",
        "-j",
        type=_positive,
        help="files at once for the per-file probe (default 4)",
    )
    ck.add_argument("--json", action="store_true", help="one JSON object on stdout")
    _common(ck)

    at = sub.add_parser("attach", help="follow the background engine's uploads live")
    at.add_argument("--json", action="store_true", help="one JSON object per line on stdout")
    _common(at)

    en = sub.add_parser("engine", help="the background engine of this state folder")
    en.add_argument("action", choices=("status", "stop"))
    en.add_argument("--json", action="store_true", help="one JSON object on stdout")
    _common(en)

    co = sub.add_parser("collections", help="list the data collections: ids, names, specs")
    co.add_argument("--json", action="store_true", help="one JSON object per line")
    _common(co)

    sv = sub.add_parser("serve", help="run the embedded Synapse-compatible backend")
    if command not in (None, "serve"):
        return parser
    try:
        from synapse_tui.server.cli import add_arguments
    except ImportError:  # pragma: no cover - the server package is being built
        pass
    else:
        add_arguments(sv)
    return parser


def build_dashboard_parser() -> argparse.ArgumentParser:
    """`synapse-tui [options] [DIR]`; its --help is the program's, so it lists the commands."""
    commands = build_parser("--help")._subparsers
    lines = ["commands (synapse-tui COMMAND --help for their options):"]
    for action in commands._group_actions if commands else []:
        for choice in getattr(action, "_choices_actions", []):
            lines.append(f"  {choice.dest:<8}  {choice.help}")
    p = _Parser(
        prog="synapse-tui",
        usage="synapse-tui [options] [DIR]\n       synapse-tui COMMAND [options] ...",
        description="Fast, resumable uploads to a Synapse backend. "
        "Without a command, opens the dashboard in DIR.",
        epilog="\n".join(lines),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "directory", nargs="?", default=".", metavar="DIR", help="folder to browse (default .)"
    )
    p.add_argument("--version", action="version", version=f"synapse-tui {__version__}")
    _transfer(p)
    _common(p)
    return p


# Options that take a value, in any parser: needed to find the command behind them.
_VALUED = {
    "--host", "--token", "--user-token", "--tenant", "--state-dir", "--ca-bundle", "--proxy",
    "--concurrency", "-j", "--chunk-size", "--bwlimit", "--retries",
}  # fmt: skip


def _split_command(argv: list[str]) -> tuple[int | None, str | None]:
    """The index of the first word that is not an option or an option's value, and the word."""
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            return (i + 1, argv[i + 1]) if i + 1 < len(argv) else (None, None)
        if not arg.startswith("-") or arg == "-":
            return i, arg
        i += 2 if arg in _VALUED else 1
    return None, None


def _route(argv: list[str]) -> tuple[list[str], bool]:
    """Common options may come before the command (`synapse-tui --host X status`): they are
    moved behind it. Returns the arguments and whether a command is named."""
    index, word = _split_command(argv)
    if index is None or word not in COMMANDS:
        return argv, False
    return [word, *argv[:index], *argv[index + 1 :]], True


def _unknown_command(word: str | None) -> str | None:
    """'unknown command ...' for a word that is close to a command and is not a path."""
    if word is None or os.path.lexists(word):
        return None
    close = difflib.get_close_matches(word, COMMANDS, n=1, cutoff=0.6)
    if not close:
        return None
    return f"unknown command {word!r}; did you mean {close[0]!r}?"


def settings_from(args: argparse.Namespace) -> Settings:
    keys = (
        "host",
        "access_token",
        "user_token",
        "tenant",
        "state_dir",
        "insecure",
        "ca_bundle",
        "proxy",
        "chunk_size",
        "concurrency",
        "bwlimit",
        "retries",
        "strategy",
    )
    return load_settings({k: getattr(args, k, None) for k in keys})


def main(argv: Sequence[str] | None = None) -> int:
    argv, named = _route(list(sys.argv[1:] if argv is None else argv))
    if named:
        args = build_parser(argv[0]).parse_args(argv)
    else:
        problem = _unknown_command(_split_command(argv)[1])
        if problem:
            sys.stderr.write(f"synapse-tui: error: {problem}\n")
            return EXIT_USAGE
        args = build_dashboard_parser().parse_args(argv)
        args.command = None
    try:
        if args.command == "serve":
            from synapse_tui.server.cli import run

            return run(args)
        settings = settings_from(args)
        PathFilter(getattr(args, "filters", None) or [])  # a bad pattern: one line, at once
        if args.command is None:
            from synapse_tui.ui.app import run_dashboard

            return run_dashboard(settings, args.directory, args.foreground)
        if args.command == "status":
            return cmd_status(settings, args)
        if args.command in ("attach", "engine"):
            from synapse_tui.service import front

            return (front.cmd_attach if args.command == "attach" else front.cmd_engine)(
                settings, args
            )
        import asyncio  # here, not at the top: status and --help start faster without it

        if args.command == "scan":
            return asyncio.run(cmd_scan(settings, args))
        if args.command == "collections":
            from synapse_tui.collections_cmd import run_collections

            return asyncio.run(run_collections(settings, args, make_client, _reach))
        if args.command == "check":
            from synapse_tui.check import run_check

            return asyncio.run(run_check(settings, args))
        return run_transfer(settings, args)
    except (ConfigError, FatalError) as exc:
        sys.stderr.write(f"synapse-tui: error: {exc}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        sys.stderr.write("synapse-tui: interrupted\n")
        return EXIT_INTERRUPTED


# -- upload / resume ---------------------------------------------------------------------------


def make_client(settings: Settings) -> ProtocolClient:
    """A ProtocolClient for the configured backend (see engine/factory.py)."""
    from synapse_tui.engine.factory import make_client as make

    return make(settings)


def make_manager(
    settings: Settings, listeners: list[Listener], client: ProtocolClient | None = None
) -> UploadManager:
    """An UploadManager for the configured backend (see engine/factory.py)."""
    from synapse_tui.engine.factory import make_manager as make

    return make(settings, listeners, client)


def run_transfer(settings: Settings, args: argparse.Namespace) -> int:
    from synapse_tui.service.spawn import foreground_requested

    if not (args.foreground or foreground_requested()):
        from synapse_tui.service.front import run_via_engine

        return run_via_engine(settings, args)
    import asyncio

    from synapse_tui.headless import catch_interrupts, make_reporter

    reporter = make_reporter(args.json, settings.credentials.secrets(), args.verbose)
    manager: Any = None

    async def transfer() -> int:
        nonlocal manager
        loop = asyncio.get_running_loop()
        client = make_client(settings)
        try:
            await _reach(client)  # before the journal is opened: a dead backend touches nothing
        except BaseException:
            await client.aclose()
            raise
        try:
            manager = make_manager(settings, [reporter], client)
        except BaseException:  # a journal that cannot be used: one line, see main()
            await client.aclose()
            raise

        interrupted = catch_interrupts(loop)
        manager.start()
        try:
            if args.command == "upload":
                plan = await _collection_plan(manager, args)
                work = asyncio.ensure_future(
                    _upload_all(manager, args.paths, args.force, args.priority, plan, args.filters)
                )
            else:
                count = manager.resume_unfinished()
                if count == 0 and not args.json and not reporter.summary.resumable:
                    sys.stdout.write("nothing to resume\n")
                work = asyncio.ensure_future(manager.wait_idle())
            stop = asyncio.ensure_future(interrupted.wait())
            await asyncio.wait({work, stop}, return_when=asyncio.FIRST_COMPLETED)
            if interrupted.is_set():
                work.cancel()
                await manager.close("interrupted")
                left = manager.journal.count_unfinished(settings.host)
                reporter.flush()
                sys.stderr.write(
                    f"\ninterrupted: {left} unfinished file(s) saved; "
                    "run `synapse-tui resume` to finish them\n"
                )
                return EXIT_INTERRUPTED
            stop.cancel()
            await work
        finally:
            try:
                await manager.close()
            finally:  # a failed journal write raises from close: its thread joined all the same
                manager.journal.close()
        reporter.finish()
        return reporter.summary.exit_code

    try:
        return asyncio.run(transfer())
    except (ConfigError, FatalError):
        raise
    except SynapseError as exc:
        sys.stderr.write(
            "synapse-tui: error: " + redact(str(exc), settings.credentials.secrets()) + "\n"
        )
        return EXIT_USAGE
    except Exception as exc:  # last resort: one line, never the token
        sys.stderr.write(
            "synapse-tui: error: "
            + redact(f"{type(exc).__name__}: {exc}", settings.credentials.secrets())
            + "\n"
        )
        return EXIT_FAILED


async def _reach(client: ProtocolClient) -> None:
    """Before the journal is touched: the backend answers and takes the credentials."""
    import asyncio

    from synapse_tui.engine.errors import TransientError

    for attempt in range(3):
        try:
            await client.ping()
            return
        except TransientError as exc:
            if attempt == 2:
                raise ConfigError(f"backend unreachable: {exc}") from None
            await asyncio.sleep(0.5 * (attempt + 1))


async def _upload_all(
    manager: Any,
    paths: list[str],
    force: bool,
    priority: int,
    plan: Any,
    rules: list[tuple[bool, str]],
) -> None:
    totals = await manager.add_paths(
        [os.fsencode(p) for p in paths],
        force=force,
        priority=priority,
        plan=plan,
        path_filter=PathFilter(rules),
    )
    if totals.files == 0 and totals.failed == 0:
        warn_no_files(paths, rules)
    await manager.wait_idle()


async def _collection_plan(manager: Any, args: argparse.Namespace) -> Any:
    """Fetch the target collection and check the spec options before anything uploads."""
    if args.collection is None:
        if args.spec or args.spec_map or args.group_by_stem or args.meta:
            raise ConfigError("--spec, --spec-map, --group-by-stem and --meta need --collection")
        return None
    from synapse_tui.engine.catalog import resolve_collection
    from synapse_tui.engine.collections import CollectionPlan, parse_meta, parse_spec_map

    try:
        spec_map = parse_spec_map(args.spec_map)
        meta = parse_meta(args.meta)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    collection = await resolve_collection(manager.client, args.collection)  # an id or a name
    plan = CollectionPlan(collection, args.spec, args.group_by_stem, spec_map, meta)
    plan.validate()
    return plan


# -- scan / status -----------------------------------------------------------------------------


async def cmd_scan(settings: Settings, args: argparse.Namespace) -> int:
    from synapse_tui.engine.scan_check import check_scan
    from synapse_tui.reports import ScanWriter
    from synapse_tui.service.queries_front import scan_via_engine

    answered = await scan_via_engine(settings, args)  # None: no engine runs (or --foreground)
    if answered is not None:
        return answered
    journal = None
    if settings.host:  # the ledger says what was uploaded there; without a host, no import
        from synapse_tui.engine.journal import Journal

        journal = Journal(settings.state_dir)
    host = settings.host
    ledger = (lambda keys: journal.uploads_of(host, keys)) if journal and host else None
    writer = ScanWriter(args.json)
    files = nbytes = 0
    started = time.monotonic()
    batches = check_scan([os.fsencode(p) for p in args.paths], ledger, PathFilter(args.filters))
    try:  # findings printed batch by batch: nothing kept per file (docs/scale.md)
        async for checked in batches:
            files, nbytes = files + checked.files, nbytes + checked.bytes
            writer.write(checked.findings)
            if writer.gone:
                break  # nobody reads the rest: the scan stops
    finally:
        await batches.aclose()
        if journal:
            journal.close()
    writer.finish(files, nbytes, time.monotonic() - started)
    if files == 0 and not writer.failed and not writer.gone:
        warn_no_files(args.paths, args.filters)
    return EXIT_FAILED if writer.failed else EXIT_OK


def warn_no_files(paths: list[str], rules: object = None) -> None:
    from synapse_tui.reports import warn_no_files as warn

    warn(paths, rules)


def _current(journal: Any, failed: Any) -> list[Any]:
    """What `status` shows by default: unfinished jobs, and failures not since uploaded (a
    later run of the same path on the same host that completed hides the failure)."""
    from synapse_tui.engine.journal import UNFINISHED

    jobs = journal.jobs((*UNFINISHED, failed))
    uploaded: dict[str, dict[bytes, Any]] = {}
    shown = []
    for job in jobs:
        if job.state == failed:
            if job.host not in uploaded:
                uploaded[job.host] = journal.uploaded_paths(job.host)
            entry = uploaded[job.host].get(bytes(job.path))
            if entry is not None and entry.completed_at >= job.updated_at:
                continue
        shown.append(job)
    return shown


def cmd_status(settings: Settings, args: argparse.Namespace) -> int:
    import sqlite3

    from synapse_tui.engine.events import JobState
    from synapse_tui.engine.journal import FINISHED, Journal
    from synapse_tui.engine.journal_files import JournalError
    from synapse_tui.engine.names import display_path
    from synapse_tui.reports import write_pruned, write_status
    from synapse_tui.service.queries_front import status_via_engine

    answered = status_via_engine(settings, args)  # None: no engine runs (or --foreground)
    if answered is not None:
        return answered
    journal = Journal(settings.state_dir)  # a damaged or unreadable one: JournalError
    try:
        if args.prune:
            write_pruned(*journal.prune(FINISHED), args.json)
            if not args.all:
                return EXIT_OK
        try:
            jobs = journal.jobs() if args.all else _current(journal, JobState.FAILED)
        except sqlite3.DatabaseError as exc:  # damage deeper in the file than its first pages
            raise JournalError(
                f"cannot read the journal {journal.path}: {exc}; move it aside and run again"
                " to start a new journal"
            ) from None
        rows: list[dict[str, Any]] = []
        for job in jobs:
            state = job.state.value
            if job.state.active and journal.try_lock(job.id):
                state = "interrupted"  # nobody drives it: a crashed or killed run
                journal.unlock(job.id)
            rows.append(
                {
                    "id": job.id,
                    "state": state,
                    "path": display_path(job.path),
                    "size": job.size,
                    "offset": job.offset,
                    "host": job.host,
                    "upload_id": job.upload_id,
                    "md5": job.md5,
                    "attempts": job.attempts,
                    "last_error": job.last_error,
                }
            )
        write_status(rows, args.json, args.all)
    finally:
        journal.close()
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
