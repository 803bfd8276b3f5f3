"""Run the benchmark suite, print one table: `python -m tests.bench.run [--quick] [--only N,...]`.

Every target is a ratio measured side by side in this run on this machine: the two sides
run alternately for N rounds (the order flips each round) and the medians are compared.
Files are read once beforehand, so every side meets them in the page cache ("cached").
Results: tests/bench/results/last.json and last.md (git-ignored: docs/performance.md
keeps the tables worth keeping, dated).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from tests.bench import support
from tests.bench.cases import CASES, Context, Row, Sizes
from tests.bench.dashboard_scale import case_dashboard_million
from tests.bench.dashboard_small import case_dashboard_all
from tests.bench.presigned_cases import case_presigned
from tests.bench.scale_cases import case_million
from tests.bench.support import machine_facts, say, sdk_python

CASES[6] = case_dashboard_all  # 6a-6c, then 6d: the terminal output with many small files
CASES[8] = case_presigned  # presigned into S3-compatible storage (moto)
CASES[9] = case_million  # 100k and 1M queued files: peak RSS, flat (the longest case)
CASES[10] = case_dashboard_million  # 1M queued in the dashboard: keys, rate, RSS (long too)

RESULTS = Path(__file__).resolve().parent / "results"
HEADERS = ("case", "ours", "theirs / reference", "ratio", "target", "result")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tests.bench.run", description=__doc__)
    p.add_argument("--quick", action="store_true", help="1 round, small sizes (a smoke run)")
    p.add_argument("--only", default="", help="comma-separated case numbers, e.g. 1,2,5")
    p.add_argument("--rounds", type=int, help="rounds per case (default 3; --quick 1)")
    p.add_argument("--workdir", help="keep data here instead of a temp dir (reused across runs)")
    p.add_argument("--results", default=str(RESULTS), help="folder for last.json and last.md")
    p.add_argument(
        "--merge",
        action="store_true",
        help="with --only: replace just those cases' rows in the existing last.json",
    )
    return p.parse_args(argv)


def table(rows: list[Row]) -> str:
    """A GitHub-flavoured Markdown table (readable as plain text too)."""
    cells = [
        (
            r.case,
            r.ours,
            r.theirs,
            "-" if r.ratio is None else f"{r.ratio:.2f}",
            r.target,
            r.status,
        )
        for r in rows
    ]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(HEADERS)]

    def line(values: tuple[str, ...]) -> str:
        return "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)) + " |"

    out = [line(HEADERS), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(c) for c in cells]
    return "\n".join(out)


def machine_text(facts: dict[str, object], notes: list[str]) -> str:
    lines = [
        f"Machine: {facts['cpu']}, {facts['cores']} cores, {facts['ram_gib']} GiB RAM; "
        f"Python {facts['python']}; Linux {facts['kernel']}; {facts['date']}.",
    ]
    lines += notes
    return "\n".join(lines)


def run_suite(
    only: set[int] | None,
    quick: bool,
    rounds: int,
    work: Path,
    on_row: Callable[[list[Row], list[str]], None] | None = None,
) -> tuple[list[Row], list[str]]:
    sizes = Sizes.quick() if quick else Sizes.full()
    needs_sdk = only is None or bool(only & {2, 3, 4, 8})
    sdk, why = (None, "not needed") if not needs_sdk else sdk_python()
    notes = [
        f"Rounds per case: {rounds} (sides interleaved, order flipped each round; medians); "
        "case 3 (peak RSS): one run per configuration, the worst value.",
        "All files cached (read once before timing; nothing dropped from the page cache).",
        "ours = wall time of the whole `synapse-tui` command (interpreter start-up included), "
        "except 2a and 7, which use the CLI's own summary clock (its batch, start-up and "
        "imports excluded) like the other side: synapse-sdk = the time of its upload calls in "
        "one process (import excluded); 7 = the same client against two backends. "
        "Case 4 times both sides as whole commands (the SDK's driver too), at the default "
        "settings. Whole-command rates are kept in last.json.",
        "Each upload side gets a fresh server process, storage root and state dir; the "
        "roots of many small files are deleted only at the end (deleting thousands of "
        "files between rounds slows ext4's next allocations).",
    ]
    if needs_sdk:
        if sdk:
            notes.append(f"synapse-sdk interpreter: {sdk} ({why}).")
        else:
            say(f"synapse-sdk unavailable, its cases are skipped: {why}")
            notes.append(f"synapse-sdk unavailable: {why}.")
    ctx = Context(work, sizes, rounds, sdk, why)
    rows: list[Row] = []
    for number, case in CASES.items():
        if only is not None and number not in only:
            continue
        say(f"case {number}: {case.__name__} ...")
        started = time.monotonic()
        try:
            rows.extend(case(ctx))
        except Exception as exc:  # one broken case must not lose the others
            traceback.print_exc()
            rows.append(
                Row(f"{number} {case.__name__}", "-", "-", None, "-", f"error: {exc}"[:120])
            )
        say(f"case {number} took {time.monotonic() - started:.0f}s")
        if on_row is not None:
            on_row(rows, notes)
    return rows, notes


def write_results(folder: Path, rows: list[Row], facts: dict[str, object], notes: list[str]):
    folder.mkdir(parents=True, exist_ok=True)
    data = {
        "machine": facts,
        "notes": notes,
        "rows": [r.__dict__ for r in rows],
    }
    (folder / "last.json").write_text(json.dumps(data, indent=2, default=str) + "\n")
    (folder / "last.md").write_text(table(rows) + "\n\n" + machine_text(facts, notes) + "\n")


def case_number(row: Row) -> str:
    return row.case.split()[0].rstrip("abcdef'")


def merged(folder: Path, rows: list[Row]) -> list[Row]:
    """The rows of the previous last.json, with the re-run cases' rows replaced in place."""
    try:
        old = [Row(**r) for r in json.loads((folder / "last.json").read_text())["rows"]]
    except (OSError, ValueError, KeyError, TypeError):
        return rows
    fresh = {case_number(r) for r in rows}
    out: list[Row] = []
    for r in old:
        if case_number(r) in fresh:
            out.extend(n for n in rows if case_number(n) == case_number(r) and n not in out)
        else:
            out.append(r)
    out.extend(r for r in rows if r not in out)
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    support.ALLOW_INSTALL = True  # run by hand: a missing reference tool may be installed
    only = {int(x) for x in args.only.split(",") if x.strip()} or None
    rounds = args.rounds or (1 if args.quick else 3)
    own_tmp = args.workdir is None
    work = Path(args.workdir or tempfile.mkdtemp(prefix="synapse-tui-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    say(f"work dir: {work}")
    try:
        facts = machine_facts()

        def partial(rows: list[Row], notes: list[str]) -> None:
            if not args.merge:
                write_results(Path(args.results), rows, facts, notes)  # kept if a case hangs

        rows, notes = run_suite(only, args.quick, rounds, work, partial)
    finally:
        if own_tmp:
            shutil.rmtree(work, ignore_errors=True)
        else:
            shutil.rmtree(work / "runs", ignore_errors=True)
    facts = machine_facts()
    if args.merge:
        folder = Path(args.results)
        with contextlib.suppress(OSError, ValueError, KeyError):
            notes = json.loads((folder / "last.json").read_text())["notes"]
        cases = ", ".join(sorted({case_number(r) for r in rows}))
        notes = [*notes, f"Case(s) {cases} re-run on {facts['date']} (--merge)."]
        rows = merged(folder, rows)
    write_results(Path(args.results), rows, facts, notes)
    sys.stdout.write(table(rows) + "\n\n" + machine_text(facts, notes) + "\n")
    failed = any(r.status == "FAIL" or r.status.startswith("error") for r in rows)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
