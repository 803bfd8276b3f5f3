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


# `scan --json`'s final object keeps the first PATHS_CAP findings of each kind in its
# `*_paths` lists (every finding was printed as its own line before it); `paths_left_out`
# counts the rest, so the line stays bounded however large the folder.
PATHS_CAP = 1000
# A finding's kind (on the engine's wire too): its list in the summary, its NDJSON event.
_KINDS = {
    "duplicates": ("duplicate_paths", "duplicate"),
    "uploaded": ("already_uploaded_paths", "already_uploaded"),
    "refused": ("skipped_paths", "skipped"),
    "failed": ("failed_paths", "failed"),
}


class ScanWriter:
    """`scan`'s findings printed as they are found (plain: one line each; JSON: one object
    each), then the summary with the counts: nothing held grows with the folder."""

    def __init__(self, json_mode: bool) -> None:
        from synapse_tui.headless import PipeGuard  # what `upload` writes through too

        self.json_mode = json_mode
        self.counts = dict.fromkeys(_KINDS, 0)
        self.kept: dict[str, list[dict[str, Any]]] = {k: [] for k in _KINDS}
        # A reader that leaves (`scan | head`): nothing more is printed, no traceback.
        self.out, self.err = PipeGuard(sys.stdout), PipeGuard(sys.stderr)

    @property
    def gone(self) -> bool:
        """The reader left: the caller stops the scan."""
        return self.out.broken or self.err.broken

    def write(self, findings: Iterable[dict[str, Any]]) -> None:
        """Findings as the scan yields them: dicts with `kind`, `path` and its detail."""
        for f in findings:
            kind = f["kind"]
            entry = {k: v for k, v in f.items() if k != "kind"}
            self.counts[kind] += 1
            if len(self.kept[kind]) < PATHS_CAP:
                self.kept[kind].append(entry)
            if self.json_mode:
                line = {"event": _KINDS[kind][1], **entry}
                self.out.write(json.dumps(line, ensure_ascii=False) + "\n")
            elif kind == "duplicates":
                self.out.write(f"duplicate  {f['path']} = {f['duplicate_of']}\n")
            elif kind == "uploaded":
                self.out.write(f"uploaded   {f['path']} (upload {f['upload_id']})\n")
            else:
                word = "skipped" if kind == "refused" else "failed"
                self.err.write(f"{word:<10} {f['path']}: {f['reason']}\n")
        self._flush()  # a batch's lines reach a pipe now, not when the scan ends

    def _flush(self) -> None:
        self.err.flush()
        self.out.flush()

    @property
    def failed(self) -> int:
        return self.counts["failed"]

    def finish(self, files: int, nbytes: int, seconds: float) -> dict[str, Any]:
        """Print the summary (a line, or `scan --json`'s final object) and return it."""
        result: dict[str, Any] = {
            "event": "scan",
            "files": files,
            "bytes": nbytes,
            "duplicates": self.counts["duplicates"],
            "already_uploaded": self.counts["uploaded"],
            "skipped": self.counts["refused"],
            "failed": self.counts["failed"],
        }
        for kind, (name, _) in _KINDS.items():
            result[name] = self.kept[kind]
        result["paths_left_out"] = sum(self.counts[k] - len(self.kept[k]) for k in _KINDS)
        result["seconds"] = round(seconds, 3)
        result["hash_rate"] = round(nbytes / seconds, 1) if seconds > 0 else None
        if self.json_mode:
            self.out.write(json.dumps(result, ensure_ascii=False) + "\n")
            self._flush()
            return result
        rate = nbytes / seconds if seconds > 0 else 0.0
        self.out.write(
            f"{files} files, {format_size(nbytes)}; {result['duplicates']} duplicates, "
            f"{result['already_uploaded']} already uploaded, {result['skipped']} skipped, "
            f"{result['failed']} failed; hashed at {format_rate(rate)} in {seconds:.2f}s\n"
        )
        self._flush()
        return result


def warn_no_files(paths: list[str], rules: object = None) -> None:
    """An empty folder is not an error, but the person should hear that nothing was found.
    `rules`: the command's --include/--exclude (any given: they may have left out all)."""
    from synapse_tui.engine.names import display_path

    shown = ", ".join(display_path(os.fsencode(p)) for p in paths)
    taken = " that the --include/--exclude rules take" if rules else ""
    sys.stderr.write(f"synapse-tui: warning: no files found in {shown}{taken}\n")
