"""What `status` and `scan` print, shared by the in-process run and the engine's clients."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from typing import Any

from synapse_tui.units import format_rate, format_size


def write_pruned(pruned: int, kept: int, json_mode: bool) -> None:
    if json_mode:
        sys.stdout.write(json.dumps({"event": "pruned", "pruned": pruned, "kept": kept}) + "\n")
    else:
        note = f" (kept {kept} holding collection records)" if kept else ""
        sys.stdout.write(f"pruned {pruned} finished, failed or cancelled jobs{note}\n")


class StatusWriter:
    """`status`'s jobs, one line (or object) each, a page at a time: a long journal is
    printed as it is read, never held whole."""

    def __init__(self, json_mode: bool, every: bool) -> None:
        self.json_mode = json_mode
        self.every = every
        self.shown = 0

    def write(self, rows: Iterable[dict[str, Any]]) -> None:
        for r in rows:
            self.shown += 1
            if self.json_mode:
                sys.stdout.write(json.dumps({"event": "job", **r}, ensure_ascii=False) + "\n")
                continue
            if self.shown == 1:
                sys.stdout.write(f"{'ID':>5}  {'STATE':<11} {'PROGRESS':>17}  PATH\n")
            pct = 100.0 * r["offset"] / r["size"] if r["size"] else 100.0
            progress = f"{format_size(r['offset'])} {pct:3.0f}%"
            line = f"{r['id']:>5}  {r['state']:<11} {progress:>17}  {r['path']}"
            if r["last_error"] and r["state"] not in ("done",):
                line += f"\n{'':>7}{r['last_error']}"
            sys.stdout.write(line + "\n")

    def finish(self) -> None:
        if self.shown == 0 and not self.json_mode:
            more = "" if self.every else " (--all shows every job)"
            sys.stdout.write(f"no unfinished jobs{more}\n")


def write_status(rows: Iterable[dict[str, Any]], json_mode: bool, every: bool) -> None:
    writer = StatusWriter(json_mode, every)
    writer.write(rows)
    writer.finish()


def scan_result(found: dict[str, Any], seconds: float) -> dict[str, Any]:
    """`scan --json`'s object: counts under the names `upload --json` uses for its scan
    event, the lists beside them. `found`: files, bytes and the four lists."""
    nbytes = found["bytes"]
    return {
        "event": "scan",
        "files": found["files"],
        "bytes": nbytes,
        "duplicates": len(found["duplicates"]),
        "already_uploaded": len(found["uploaded"]),
        "skipped": len(found["refused"]),
        "failed": len(found["failed"]),
        "duplicate_paths": found["duplicates"],
        "already_uploaded_paths": found["uploaded"],
        "skipped_paths": found["refused"],
        "failed_paths": found["failed"],
        "seconds": round(seconds, 3),
        "hash_rate": round(nbytes / seconds, 1) if seconds > 0 else None,
    }


def write_scan(result: dict[str, Any], seconds: float, json_mode: bool) -> None:
    if json_mode:
        sys.stdout.write(json.dumps(result, ensure_ascii=False) + "\n")
        return
    for d in result["duplicate_paths"]:
        sys.stdout.write(f"duplicate  {d['path']} = {d['duplicate_of']}\n")
    for u in result["already_uploaded_paths"]:
        sys.stdout.write(f"uploaded   {u['path']} (upload {u['upload_id']})\n")
    for r in result["skipped_paths"]:
        sys.stderr.write(f"skipped    {r['path']}: {r['reason']}\n")
    for r in result["failed_paths"]:
        sys.stderr.write(f"failed     {r['path']}: {r['reason']}\n")
    nbytes = result["bytes"]
    rate = nbytes / seconds if seconds > 0 else 0.0
    sys.stdout.write(
        f"{result['files']} files, {format_size(nbytes)}; {result['duplicates']} duplicates, "
        f"{result['already_uploaded']} already uploaded, {result['skipped']} skipped, "
        f"{result['failed']} failed; hashed at {format_rate(rate)} in {seconds:.2f}s\n"
    )


def warn_no_files(paths: list[str]) -> None:
    """An empty folder is not an error, but the person should hear that nothing was found."""
    from synapse_tui.engine.names import display_path

    shown = ", ".join(display_path(os.fsencode(p)) for p in paths)
    sys.stderr.write(f"synapse-tui: warning: no files found in {shown}\n")
