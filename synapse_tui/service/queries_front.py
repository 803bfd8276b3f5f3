"""`status` and `scan` as clients of a running engine; with none, the caller reads itself."""

from __future__ import annotations

import argparse
import os
import sys
import time

from synapse_tui.config import Settings
from synapse_tui.engine.errors import ConfigError
from synapse_tui.engine.names import absolute_text
from synapse_tui.reports import ScanWriter, StatusWriter, warn_no_files, write_pruned
from synapse_tui.service.client import EngineClient, EngineUnavailable, Refused, connect
from synapse_tui.service.spawn import LOG_NAME, foreground_requested
from synapse_tui.service.wire import Prune, ScanPage, ScanStart, StatusJobs

EXIT_OK, EXIT_FAILED = 0, 1
PAGE = 500  # rows per request: what the client holds at once


def _wanted(args: argparse.Namespace) -> bool:
    return not (getattr(args, "foreground", False) or foreground_requested())


async def _running(settings: Settings) -> EngineClient | None:
    """The engine of the state folder if one runs. None starts one: `status` and `scan`
    only read (the journal and the files), need no backend, and with no engine the
    journal has no other writer to race, so they read it themselves rather than leave a
    background process behind a query."""
    try:
        return await connect(settings, "control", start=False)
    except EngineUnavailable:
        return None


def _failed(exc: Exception, settings: Settings) -> int:
    if isinstance(exc, Refused) and exc.kind == "config":
        raise ConfigError(str(exc)) from None
    log = os.path.join(settings.state_dir, LOG_NAME)
    sys.stderr.write(f"synapse-tui: error: {exc} (see {log})\n")
    return EXIT_FAILED


def status_via_engine(settings: Settings, args: argparse.Namespace) -> int | None:
    """`status` through the engine (its live state laid over the journal), a page at a
    time; None when no engine runs (or --foreground)."""
    if not _wanted(args):
        return None
    import asyncio

    async def run() -> int | None:
        client = await _running(settings)
        if client is None:
            return None
        try:
            if args.prune:
                answer = await client.request(Prune())
                write_pruned(int(answer["pruned"]), int(answer["kept"]), args.json)
                if not args.all:
                    return EXIT_OK
            writer = StatusWriter(args.json, args.all)
            page = StatusJobs(every=args.all, limit=PAGE)
            while True:
                answer = await client.request(page)
                writer.write(answer["jobs"])
                sys.stdout.flush()
                cursor = answer.get("next")
                if not cursor:
                    break
                page = StatusJobs(args.all, int(cursor[0]), int(cursor[1]), PAGE)
            writer.finish()
            return EXIT_OK
        except (Refused, EngineUnavailable, TimeoutError) as exc:
            return _failed(exc, settings)
        finally:
            await client.close()

    return asyncio.run(run())


async def scan_via_engine(settings: Settings, args: argparse.Namespace) -> int | None:
    """`scan` run by the engine (its journal's ledger), its findings pulled a page at a
    time; None when no engine runs (or --foreground)."""
    if not _wanted(args):
        return None
    from synapse_tui.service.engine_settings import filters_for
    from synapse_tui.service.front import as_given

    client = await _running(settings)
    if client is None:
        return None
    back = as_given(list(args.paths))
    writer = ScanWriter(args.json)  # each page's findings printed as it comes: none kept
    started = time.monotonic()
    try:
        absolute = [absolute_text(p) for p in args.paths]
        filters = filters_for(client.status, args)
        scan_id = (await client.request(ScanStart(absolute, settings.host, filters)))["scan"]
        while True:  # a page waits for the engine's next finding: no time limit
            answer = await client.request(ScanPage(scan_id, PAGE), timeout=None)
            for f in answer["findings"]:
                f["path"] = back(f["path"])
                if "duplicate_of" in f:
                    f["duplicate_of"] = back(f["duplicate_of"])
            writer.write(answer["findings"])
            if answer.get("done") or writer.gone:  # gone: the engine's scan ends as we leave
                break
    except (Refused, EngineUnavailable, TimeoutError) as exc:
        return _failed(exc, settings)
    finally:
        await client.close()
    files = int(answer.get("files", 0))
    writer.finish(files, int(answer.get("bytes", 0)), time.monotonic() - started)
    if files == 0 and not writer.failed and not writer.gone:
        warn_no_files(args.paths, args.filters)
    return EXIT_FAILED if writer.failed else EXIT_OK
