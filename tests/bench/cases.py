"""The benchmark cases: each runs both sides interleaved for N rounds and returns table rows."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.bench.support import (
    Backend,
    GiB,
    Measured,
    MiB,
    cli,
    client_env,
    drf_server,
    embedded_server,
    ensure_tool,
    make_random_file,
    make_small_files,
    make_sparse_file,
    python_cmd,
    run_measured,
    say,
    sdk_upload,
    warm,
)


@dataclass
class Row:
    """One line of the table. `ratio` is ours/theirs (or the measured figure vs the target)."""

    case: str
    ours: str
    theirs: str
    ratio: float | None
    target: str
    status: str  # PASS, FAIL, info, skipped: <why>, not measured: <why>
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Sizes:
    scan_files: int
    scan_file_size: int
    large: int
    memory: list[tuple[int, int]]  # (file size, chunk size); the first pair is the headline
    small_count: int
    small_size: int
    resume: int
    resume_chunk: int
    chunk: int
    concurrency_small: int
    dashboard_file: int = 256 * MiB
    dashboard_presses: int = 100
    dashboard_latency_file: int = 512 * MiB  # 6a: long enough for the presses under load
    million: tuple[int, int] = (100_000, 1_000_000)  # 9: queue sizes whose peak RSS is compared
    dashboard_million: int = 1_000_000  # 10: tiny files queued in the dashboard

    @classmethod
    def full(cls) -> Sizes:
        return cls(
            scan_files=16,
            scan_file_size=128 * MiB,
            large=1 * GiB,
            memory=[(4 * GiB, 50 * MiB), (1 * GiB, 50 * MiB), (4 * GiB, 200 * MiB)],
            small_count=2000,
            small_size=20 * 1024,
            resume=1 * GiB,
            resume_chunk=50 * MiB,
            chunk=50 * MiB,
            concurrency_small=16,
            dashboard_file=256 * MiB,
            dashboard_presses=100,
            dashboard_latency_file=512 * MiB,
        )

    @classmethod
    def quick(cls) -> Sizes:
        return cls(
            scan_files=4,
            scan_file_size=32 * MiB,
            large=64 * MiB,
            memory=[(256 * MiB, 8 * MiB), (64 * MiB, 8 * MiB), (256 * MiB, 32 * MiB)],
            small_count=200,
            small_size=20 * 1024,
            resume=128 * MiB,
            resume_chunk=8 * MiB,
            chunk=8 * MiB,
            concurrency_small=16,
            dashboard_file=32 * MiB,
            dashboard_presses=40,
            dashboard_latency_file=32 * MiB,
            million=(2_000, 20_000),
            dashboard_million=2_000,
        )


class Context:
    """What every case shares: the work dir, sizes, rounds, the SDK interpreter."""

    def __init__(self, work: Path, sizes: Sizes, rounds: int, sdk: str | None, sdk_why: str):
        self.work = work
        self.sizes = sizes
        self.rounds = rounds
        self.sdk = sdk
        self.sdk_why = sdk_why
        self._files: dict[str, Path] = {}

    def fresh(self, name: str) -> Path:
        path = self.work / "runs" / f"{name}-{uuid.uuid4().hex[:8]}"
        path.mkdir(parents=True)
        return path

    def large_file(self, size: int) -> Path:
        key = f"large-{size}"
        if key not in self._files:
            say(f"data: a {fmt_size(size)} random file")
            self._files[key] = make_random_file(self.work / "data" / f"large-{size}.bin", size)
        warm([self._files[key]])
        return self._files[key]

    def small_dir(self) -> Path:
        s = self.sizes
        key = "small"
        if key not in self._files:
            say(f"data: {s.small_count} files of {fmt_size(s.small_size)}")
            self._files[key] = make_small_files(
                self.work / "data" / "small", s.small_count, s.small_size
            )
        warm([self._files[key]])
        return self._files[key]


# -- formatting --------------------------------------------------------------------------------


def fmt_size(n: float) -> str:
    for unit, scale in (("GiB", GiB), ("MiB", MiB), ("KiB", 1024)):
        if n >= scale:
            value = n / scale
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{n:.0f} B"


def fmt_rate(bps: float) -> str:
    return f"{bps / MiB:,.0f} MiB/s"


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def interleave(rounds: int, sides: list[Callable[[], None]]) -> None:
    """Run the sides alternately; the order flips every round so neither is always first."""
    for r in range(rounds):
        order = sides if r % 2 == 0 else list(reversed(sides))
        for side in order:
            side()


# -- our CLI -----------------------------------------------------------------------------------


def size_arg(n: int) -> str:
    return f"{n // MiB}M" if n % MiB == 0 else str(n)


def ours_upload(
    ctx: Context,
    backend: Backend,
    paths: list[Path],
    chunk: int,
    expect_files: int,
    concurrency: int | None = None,
    extra: tuple[str, ...] = (),
    timeout: float = 3600,
) -> Measured:
    state = ctx.fresh("state")
    args = ["upload", *map(str, paths), "--json", "--chunk-size", size_arg(chunk), *extra]
    if concurrency:
        args += ["--concurrency", str(concurrency)]
    m = run_measured(cli(*args), env=client_env(backend.url, backend.token, state), timeout=timeout)
    m.check("synapse-tui upload")
    summary = next((e for e in m.json_lines() if e.get("event") == "summary"), None)
    if summary is None or summary.get("uploaded") != expect_files:
        raise RuntimeError(f"synapse-tui upload: expected {expect_files} uploads, got {summary}")
    shutil.rmtree(state, ignore_errors=True)
    return m


def lean_upload(backend: Backend, folders: list[Path], expect_files: int) -> Measured:
    """`lean_driver.py` (case 4's ceiling) as a whole command, in our interpreter."""
    driver = Path(__file__).with_name("lean_driver.py")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNAPSE_")}
    cmd = python_cmd(str(driver), backend.url, backend.token, "16", *map(str, folders))
    m = run_measured(cmd, env=env).check("lean client")
    answer = m.json_lines()[-1]
    if answer.get("files") != expect_files:
        raise RuntimeError(f"lean client: expected {expect_files} uploads, got {answer}")
    return m


def summary_seconds(m: Measured) -> float:
    """The CLI's own clock: from its batch's start (after interpreter start-up and imports)
    to its summary; what the official client's driver times around its upload calls."""
    summary = next(e for e in m.json_lines() if e.get("event") == "summary")
    return float(summary["seconds"])


def _sdk_missing(ctx: Context, case: str, target: str) -> Row | None:
    if ctx.sdk is None:
        return Row(case, "-", "-", None, target, f"skipped: {ctx.sdk_why}")
    return None


# -- 1: pre-scan -------------------------------------------------------------------------------


def case_scan(ctx: Context) -> list[Row]:
    s = ctx.sizes
    xxhsum = ensure_tool("xxhsum", "xxhash")
    md5sum = ensure_tool("md5sum", "coreutils")
    folder = ctx.work / "data" / "scan"
    if not folder.exists():
        say(f"making {s.scan_files} files of {fmt_size(s.scan_file_size)} for the scan")
        for i in range(s.scan_files):
            make_random_file(folder / f"s{i:03d}.bin", s.scan_file_size)
    files = sorted(folder.iterdir())
    total = sum(f.stat().st_size for f in files)
    warm([folder])
    label = f"{len(files)} files, {fmt_size(total)}, cached"
    ours: list[float] = []
    inproc: list[float] = []
    xxh: list[float] = []
    md5: list[float] = []
    env = client_env("", "", ctx.fresh("state"))
    env.pop("SYNAPSE_HOST")
    env.pop("SYNAPSE_ACCESS_TOKEN")

    def run_ours() -> None:
        m = run_measured(cli("scan", str(folder), "--json"), env=env).check("synapse-tui scan")
        result = next(e for e in m.json_lines() if e.get("event") == "scan")
        if result["bytes"] != total:
            raise RuntimeError(f"scan saw {result['bytes']} bytes, expected {total}")
        ours.append(total / m.seconds)
        inproc.append(float(result["hash_rate"]))

    def run_tool(tool: str | None, args: list[str], into: list[float]) -> Callable[[], None]:
        def side() -> None:
            if tool is None:
                return
            m = run_measured([tool, *args, *map(str, files)]).check(tool)
            into.append(total / m.seconds)

        return side

    interleave(
        ctx.rounds,
        [run_ours, run_tool(xxhsum, ["-H2"], xxh), run_tool(md5sum, [], md5)],
    )
    o, own = median(ours), median(inproc)  # own: the scan's in-process rate
    rows = []
    if xxh:
        x = median(xxh)
        rows.append(
            Row(
                f"1a scan vs xxhsum -H2 ({label})",
                fmt_rate(o),
                fmt_rate(x),
                o / x,
                ">= 0.70",
                verdict(o / x >= 0.70),
                {"ours": ours, "xxhsum": xxh},
            )
        )
        rows.append(
            Row(
                "1a' same, scan's own rate (no interpreter start-up)",
                fmt_rate(own),
                fmt_rate(x),
                own / x,
                "(info)",
                "info",
                {"ours_inprocess": inproc},
            )
        )
    else:
        rows.append(
            Row("1a scan vs xxhsum -H2", fmt_rate(o), "-", None, ">= 0.70", "skipped: no xxhsum")
        )
    if md5:
        m5 = median(md5)
        rows.append(
            Row(
                f"1b scan vs md5sum ({label})",
                fmt_rate(o),
                fmt_rate(m5),
                o / m5,
                ">= 5",
                verdict(o / m5 >= 5),
                {"md5sum": md5},
            )
        )
    return rows


def md5sum_rate(path: Path) -> float:
    tool = ensure_tool("md5sum", "coreutils") or "md5sum"
    m = run_measured([tool, str(path)]).check("md5sum")
    return path.stat().st_size / m.seconds


# -- 2: one large file -------------------------------------------------------------------------


def case_large(ctx: Context) -> list[Row]:
    s = ctx.sizes
    big = ctx.large_file(s.large)
    label = f"{fmt_size(s.large)}, {fmt_size(s.chunk)} chunks, cached"
    ours: list[float] = []  # the CLI's summary clock, like the SDK side's in-process timing
    ours_wall: list[float] = []  # the whole command, interpreter start-up included
    theirs: list[float] = []
    md5: list[float] = []
    rss: list[float] = []

    def run_ours() -> None:
        with embedded_server(ctx.fresh("srv")) as b:
            m = ours_upload(ctx, b, [big], s.chunk, 1)
        shutil.rmtree(b.root, ignore_errors=True)
        ours.append(s.large / summary_seconds(m))
        ours_wall.append(s.large / m.seconds)
        rss.append(float(m.peak_rss or 0))

    def run_sdk() -> None:
        if ctx.sdk is None:
            return
        with embedded_server(ctx.fresh("srv")) as b:
            m = sdk_upload(ctx.sdk, b, s.chunk, [big])
        shutil.rmtree(b.root, ignore_errors=True)
        theirs.append(s.large / float(m.json_lines()[-1]["seconds"]))

    def run_md5() -> None:
        md5.append(md5sum_rate(big))

    interleave(ctx.rounds, [run_ours, run_sdk, run_md5])
    o, wall, m5 = median(ours), median(ours_wall), median(md5)
    rows = []
    case_a = f"2a one file to embedded backend vs synapse-sdk ({label})"
    skip = _sdk_missing(ctx, case_a, ">= 1.5")
    if skip:
        skip.ours = fmt_rate(o)
        rows.append(skip)
    else:
        t = median(theirs)
        rows.append(
            Row(
                case_a,
                fmt_rate(o),
                fmt_rate(t),
                o / t,
                ">= 1.5",
                verdict(o / t >= 1.5),
                {"ours": ours, "ours_wall": ours_wall, "sdk": theirs, "ours_peak_rss": rss},
            )
        )
    rows.append(
        Row(
            f"2b same upload, whole command, vs md5sum rate ({fmt_size(s.large)})",
            fmt_rate(wall),
            fmt_rate(m5),
            wall / m5,
            ">= 0.40",
            verdict(wall / m5 >= 0.40),
            {"md5sum": md5},
        )
    )
    return rows


# -- 3: memory ---------------------------------------------------------------------------------


def case_memory(ctx: Context) -> list[Row]:
    s = ctx.sizes
    peaks: dict[str, list[float]] = {}
    sdk_peaks: list[float] = []
    (head_size, head_chunk) = s.memory[0]
    files = {
        size: make_sparse_file(ctx.work / "data" / f"sparse-{size}.bin", size)
        for size, _ in s.memory
    }

    def ours_side(size: int, chunk: int) -> Callable[[], None]:
        def side() -> None:
            with embedded_server(ctx.fresh("srv")) as b:
                m = ours_upload(ctx, b, [files[size]], chunk, 1)
            shutil.rmtree(b.root, ignore_errors=True)
            peaks.setdefault(f"{fmt_size(size)}@{fmt_size(chunk)}", []).append(
                (m.peak_rss or 0) / MiB
            )

        return side

    def run_sdk() -> None:
        if ctx.sdk is None:
            return
        with embedded_server(ctx.fresh("srv")) as b:
            m = sdk_upload(ctx.sdk, b, head_chunk, [files[head_size]])
        shutil.rmtree(b.root, ignore_errors=True)
        sdk_peaks.append((m.peak_rss or 0) / MiB)

    # Peak RSS varies by a few MiB between runs, not by tens: one run per configuration
    # (the 4 GiB uploads are the slowest part of the suite), the worst value is reported.
    interleave(1, [ours_side(head_size, head_chunk), run_sdk])
    for size, chunk in s.memory[1:]:
        ours_side(size, chunk)()
    head_key = f"{fmt_size(head_size)}@{fmt_size(head_chunk)}"
    head = max(peaks[head_key])
    theirs = f"{max(sdk_peaks):.0f} MiB (synapse-sdk)" if sdk_peaks else "-"
    ratio = head / max(sdk_peaks) if sdk_peaks else None
    rows = [
        Row(
            f"3a peak RSS of upload, {fmt_size(head_size)} file, {fmt_size(head_chunk)} chunks",
            f"{head:.0f} MiB",
            theirs,
            ratio,
            "<= 80 MiB",
            verdict(head <= 80),
            {"ours_mib": peaks, "sdk_mib": sdk_peaks},
        )
    ]
    worst = {k: max(v) for k, v in peaks.items()}
    spread = max(worst.values()) - min(worst.values())
    sweep = ", ".join(f"{k} {v:.0f}" for k, v in worst.items())
    rows.append(
        Row(
            f"3b RSS flat as file and chunk grow ({sweep} MiB)",
            f"spread {spread:.0f} MiB",
            "-",
            None,
            "spread <= 16 MiB",
            verdict(spread <= 16 and max(worst.values()) <= 80),
            {"peaks": worst},
        )
    )
    return rows


# -- 4: many small files -----------------------------------------------------------------------


def case_small(ctx: Context) -> list[Row]:
    """At the default settings (no -j), each side timed as a user times it: the whole
    command from the shell, interpreter start-up included (issue 21)."""
    s = ctx.sizes
    folder = ctx.small_dir()
    label = f"{s.small_count:,} x {fmt_size(s.small_size)}, default settings, whole command"
    ours: list[float] = []
    ours_batch: list[float] = []
    theirs: list[float] = []
    theirs_loop: list[float] = []

    # The servers' folders of thousands of files stay until the suite ends (run.py clears
    # runs/): deleting them between rounds left ext4 skipping each recently deleted inode
    # when allocating the next files, a server cost that grew from round to round.
    def run_ours() -> None:
        with embedded_server(ctx.fresh("srv")) as b:
            m = ours_upload(ctx, b, [folder], s.chunk, s.small_count)
        ours.append(s.small_count / m.seconds)
        ours_batch.append(s.small_count / summary_seconds(m))  # the CLI's own clock

    def run_sdk() -> None:
        if ctx.sdk is None:
            return
        with embedded_server(ctx.fresh("srv")) as b:
            m = sdk_upload(ctx.sdk, b, s.chunk, [folder])
        theirs.append(s.small_count / m.seconds)
        theirs_loop.append(s.small_count / float(m.json_lines()[-1]["seconds"]))

    def run_lean() -> None:  # what a client that does nothing but send could reach
        with embedded_server(ctx.fresh("srv")) as b:
            lean.append(s.small_count / lean_upload(b, [folder], s.small_count).seconds)

    lean: list[float] = []
    interleave(ctx.rounds, [run_ours, run_sdk, run_lean])
    o = median(ours)
    c = median(lean)
    ceiling = Row(
        "4 ceiling: the same files by a lean client (stdlib, raw HTTP, 16 connections; no "
        "journal, pre-scan or retries), whole command, vs synapse-sdk",
        f"{c:,.0f} files/s (synapse-tui: {o / c:.2f}x of it)",
        "-",
        None,
        "info",
        "info",
        {"lean": lean},
    )
    case = f"4 many small files, files/s vs synapse-sdk one by one ({label})"
    skip = _sdk_missing(ctx, case, ">= 6")
    if skip:
        skip.ours = f"{o:,.0f} files/s"
        return [skip, ceiling]
    t = median(theirs)
    ceiling.theirs, ceiling.ratio = f"{t:,.0f} files/s", c / t
    ceiling.details["sdk"] = theirs
    return [
        Row(
            case,
            f"{o:,.0f} files/s",
            f"{t:,.0f} files/s",
            o / t,
            ">= 6",
            verdict(o / t >= 6),
            {"ours": ours, "ours_batch": ours_batch, "sdk": theirs, "sdk_loop": theirs_loop},
        ),
        ceiling,
    ]


# -- 5: resume ---------------------------------------------------------------------------------


def _journal_offset(state: Path) -> int:
    db = state / "journal.sqlite3"
    if not db.exists():
        return 0
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            row = con.execute("SELECT MAX(offset) FROM jobs").fetchone()
        finally:
            con.close()
    except sqlite3.Error:
        return 0
    return int(row[0] or 0) if row else 0


def _wire_file_bytes(records: list[Any]) -> int:
    """File bytes that reached the server in PUT bodies (multipart framing subtracted)."""
    total = 0
    for r in records:
        if r.method != "PUT":
            continue
        rng = r.headers.get("content-range", "")
        try:
            span = rng.split()[1].split("/")[0]
            a, b = (int(x) for x in span.split("-"))
        except (IndexError, ValueError):
            continue
        length = b - a + 1
        overhead = (r.body_length or 0) - length
        total += max(0, min(length, (r.body_forwarded or 0) - overhead))
    return total


def resume_once(ctx: Context, big: Path, chunk: int) -> dict[str, Any]:
    """Upload with a bandwidth limit, SIGKILL at ~half, resume; count re-sent bytes."""
    from tests.harness.proxy import ThreadedFaultProxy

    size = big.stat().st_size
    state = ctx.fresh("state")
    with embedded_server(ctx.fresh("srv")) as b:
        port = int(b.url.rsplit(":", 1)[1].split("/")[0])
        with ThreadedFaultProxy("127.0.0.1", port) as proxy:
            host = proxy.url
            env = client_env(host, b.token, state)
            limit = max(size // 6, 4 * MiB)  # about six seconds for the whole file
            args = [
                "upload",
                str(big),
                "--json",
                "--chunk-size",
                size_arg(chunk),
                "--bwlimit",
                str(limit),
            ]
            proc = subprocess.Popen(
                cli(*args), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            deadline = time.monotonic() + 300
            killed_at = 0
            while proc.poll() is None and time.monotonic() < deadline:
                killed_at = _journal_offset(state)
                if killed_at >= size // 2:
                    # Into the next chunk by about half of it: the kill cuts a chunk mid-way.
                    time.sleep(min(chunk, size - killed_at) / 2 / limit)
                    break
                time.sleep(0.02)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            killed_at = max(killed_at, _journal_offset(state))
            if killed_at < size // 4:
                raise RuntimeError(f"upload did not reach half-way before the kill ({killed_at})")
            time.sleep(0.3)  # let the proxy notice the cut connection
            first = _wire_file_bytes(list(proxy.requests))
            n_first = len(proxy.requests)
            m = run_measured(cli("resume", "--json", "-v"), env=env).check("synapse-tui resume")
            second = _wire_file_bytes(list(proxy.requests)[n_first:])
    shutil.rmtree(b.root, ignore_errors=True)
    shutil.rmtree(state, ignore_errors=True)
    events = m.json_lines()
    done = [e for e in events if e.get("event") == "file_done"]
    if len(done) != 1:
        raise RuntimeError(f"resume did not finish the file: {events[-3:]}")
    rehash = None
    for e in events:
        msg = str(e.get("message", ""))
        if e.get("event") == "log" and "re-hashed" in msg:
            words = msg.split("re-hashed", 1)[1].split()
            nbytes, secs = int(words[0]), float(words[3].rstrip("s"))
            rehash = (nbytes, secs)
    return {
        "journal_offset_at_kill": killed_at,
        "resumed_from": done[0].get("resumed_from"),
        "sent_before_kill": first,
        "sent_after": second,
        "resent": first + second - size,
        "rehash": rehash,
    }


def case_resume(ctx: Context) -> list[Row]:
    s = ctx.sizes
    big = ctx.large_file(s.resume)
    results: list[dict[str, Any]] = []
    md5: list[float] = []
    interleave(
        ctx.rounds,
        [
            lambda: results.append(resume_once(ctx, big, s.resume_chunk)),
            lambda: md5.append(md5sum_rate(big)),
        ],
    )
    resent = max(r["resent"] for r in results)
    rows = [
        Row(
            f"5a resume after SIGKILL at ~50% ({fmt_size(s.resume)}): re-sent bytes (worst)",
            fmt_size(resent),
            f"1 chunk = {fmt_size(s.resume_chunk)}",
            resent / s.resume_chunk,
            "<= 1 chunk",
            verdict(resent <= s.resume_chunk),
            {"runs": results},
        )
    ]
    rates = [r["rehash"][0] / r["rehash"][1] for r in results if r["rehash"] and r["rehash"][1] > 0]
    m5 = median(md5)
    if rates:
        o = median(rates)
        rows.append(
            Row(
                f"5b re-hash of the sent prefix vs md5sum ({fmt_size(s.resume)} file)",
                fmt_rate(o),
                fmt_rate(m5),
                o / m5,
                ">= 0.80",
                verdict(o / m5 >= 0.80),
                {"rehash": rates, "md5sum": md5},
            )
        )
    else:
        rows.append(
            Row(
                "5b re-hash of the sent prefix vs md5sum",
                "-",
                fmt_rate(m5),
                None,
                ">= 0.80",
                "FAIL",
                {"why": "no 're-hashed' log line in resume output"},
            )
        )
    return rows


# -- 7: embedded backend vs drf-chunked-upload -------------------------------------------------


def case_backend(ctx: Context) -> list[Row]:
    s = ctx.sizes
    big = ctx.large_file(s.large)
    folder = ctx.small_dir()
    rows = []
    for label, paths, count, nbytes, conc in (
        (
            f"7a embedded vs drf-chunked-upload, {fmt_size(s.large)} (our CLI both)",
            [big],
            1,
            s.large,
            None,
        ),
        (
            f"7b embedded vs drf-chunked-upload, {s.small_count:,} x {fmt_size(s.small_size)}",
            [folder],
            s.small_count,
            s.small_count * s.small_size,
            s.concurrency_small,
        ),
    ):
        ours: list[float] = []
        theirs: list[float] = []
        walls: dict[str, list[float]] = {"embedded": [], "drf": []}

        def side(
            kind: str,
            into: list[float],
            paths=paths,
            count=count,
            nbytes=nbytes,
            conc=conc,
            walls=walls,
        ) -> Callable[[], None]:
            def run() -> None:
                server = embedded_server if kind == "embedded" else drf_server
                with server(ctx.fresh(kind)) as b:
                    m = ours_upload(ctx, b, paths, s.chunk, count, conc)
                if count == 1:  # many small files stay until the end: see case 4
                    shutil.rmtree(b.root, ignore_errors=True)
                amount = nbytes if count == 1 else count
                # The same client on both sides: its own clock leaves out the start-up both
                # pay alike, so the ratio is the backends'.
                into.append(amount / summary_seconds(m))
                walls[kind].append(amount / m.seconds)

            return run

        interleave(ctx.rounds, [side("embedded", ours), side("drf", theirs)])
        o, t = median(ours), median(theirs)
        show = fmt_rate if count == 1 else (lambda v: f"{v:,.0f} files/s")
        rows.append(
            Row(
                label,
                show(o),
                show(t),
                o / t,
                ">= 2",
                verdict(o / t >= 2),
                {"embedded": ours, "drf": theirs, "wall_clock": walls},
            )
        )
    return rows


# -- 6: the dashboard under load ----------------------------------------------------------------


def dashboard_files(ctx: Context, count: int, size: int) -> Path:
    """`count` random files of `size` in a folder of their own (the browser lists only them)."""
    key = f"dash-{count}-{size}"
    if key not in ctx._files:
        say(f"data: {count} random files of {fmt_size(size)}")
        folder = ctx.work / "data" / key
        for i in range(count):
            make_random_file(folder / f"load{i}.bin", size)
        ctx._files[key] = folder
    warm([ctx._files[key]])
    return ctx._files[key]


def case_dashboard(ctx: Context) -> list[Row]:
    from tests.bench.dashboard import key_latencies, p95, pty_run

    s = ctx.sizes
    count = 8
    folder = dashboard_files(ctx, count, s.dashboard_file)
    total = count * s.dashboard_file
    label = f"{count} x {fmt_size(s.dashboard_file)}, -j {count}, {fmt_size(s.chunk)} chunks"
    presses = s.dashboard_presses

    # 6a: key press -> frame, in this process under Pilot; the server in its own process.
    lat_folder = dashboard_files(ctx, count, s.dashboard_latency_file)
    with embedded_server(ctx.fresh("srv")) as b:
        lat = key_latencies(b, lat_folder, ctx.fresh("pilot"), s.chunk, count, presses)
    shutil.rmtree(b.root, ignore_errors=True)
    # The headline counts only presses made while all 8 uploads ran (the quick sizes may
    # finish early); the others stay in the details.
    full_load = lat["loaded"]  # the series stops once an upload ends
    if not full_load:
        raise RuntimeError("the uploads ended before the first key press")
    loaded_ms = p95(full_load) * 1000
    idle_ms = p95(lat["idle"]) * 1000

    # 6b/6c: the real dashboard on a pty vs the headless CLI, interleaved.
    dash: list[Any] = []
    ours_cli: list[float] = []

    def run_dash() -> None:
        with embedded_server(ctx.fresh("srv")) as b:
            dash.append(pty_run(b, folder, ctx.fresh("pty"), s.chunk, count))
        shutil.rmtree(b.root, ignore_errors=True)

    cli_wall: list[float] = []

    def run_cli() -> None:
        with embedded_server(ctx.fresh("srv")) as b:
            m = ours_upload(ctx, b, [folder], s.chunk, count, count)
        shutil.rmtree(b.root, ignore_errors=True)
        # The CLI's own clock (its summary: from the batch's start to the end, start-up of
        # the interpreter excluded), like the dashboard's window from `u` to all done.
        ours_cli.append(total / summary_seconds(m))
        cli_wall.append(total / m.seconds)

    interleave(ctx.rounds, [run_dash, run_cli])
    kbs = median([r.rate for r in dash]) / 1000
    d_rate = median([total / r.seconds for r in dash])
    c_rate = median(ours_cli)
    return [
        Row(
            f"6a dashboard key -> frame p95 under load "
            f"({count} x {fmt_size(s.dashboard_latency_file)}, -j {count}, "
            f"{fmt_size(s.chunk)} chunks, "
            f"{len(full_load)} j/k before the first ends, Pilot)",
            f"{loaded_ms:.1f} ms",
            f"{idle_ms:.1f} ms idle",
            loaded_ms / 50,
            "<= 50 ms",
            verdict(loaded_ms <= 50),
            {
                "loaded_ms": [round(x * 1000, 2) for x in lat["loaded"]],
                "idle_ms": [round(x * 1000, 2) for x in lat["idle"]],
                "uploading_per_press": lat["uploading"],
                "presses_at_full_load": len(full_load),
            },
        ),
        Row(
            f"6b dashboard terminal output while uploading ({label}, pty 120x40)",
            f"{kbs:,.1f} KB/s",
            "-",
            kbs / 50,
            "<= 50 KB/s",
            verdict(kbs <= 50),
            {
                "rates_bps": [round(r.rate) for r in dash],
                "window_s": [round(r.seconds, 2) for r in dash],
                "window_bytes": [r.out_bytes for r in dash],
                "session_bytes": [r.total_bytes for r in dash],
            },
        ),
        Row(
            f"6c dashboard upload rate vs headless CLI ({label})",
            fmt_rate(d_rate),
            f"{fmt_rate(c_rate)} (CLI)",
            d_rate / c_rate,
            ">= 0.90",
            verdict(d_rate / c_rate >= 0.90),
            {
                "dashboard": [total / r.seconds for r in dash],
                "cli_summary_clock": ours_cli,
                "cli_wall_incl_startup": cli_wall,
            },
        ),
    ]


CASES: dict[int, Callable[[Context], list[Row]]] = {
    1: case_scan,
    2: case_large,
    3: case_memory,
    4: case_small,
    5: case_resume,
    6: case_dashboard,
    7: case_backend,
}

__all__ = ["CASES", "Context", "Row", "Sizes"]
