"""Case 8: presigned uploads into S3-compatible storage (moto_server on loopback).

8a one large file: synapse-tui presigned (parts in parallel) vs synapse-tui chunked (through
the API server, to its disk) vs the SDK's `upload_files_bulk(strategy='presigned')` into the
same bucket; 8b many small files, the same three. Each is also set against moto's own speed
(boto3 straight to moto, no API server: the ceiling of this machine's S3 server).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tests.bench.cases import (
    Context,
    Row,
    fmt_rate,
    fmt_size,
    interleave,
    median,
    size_arg,
    summary_seconds,
)
from tests.bench.support import (
    Backend,
    Measured,
    cli,
    client_env,
    embedded_server,
    run_measured,
)
from tests.harness.moto import CREDENTIALS, MotoServer, moto_server

DRIVER = Path(__file__).with_name("sdk_bulk_driver.py")


@contextlib.contextmanager
def s3_backend(ctx: Context, moto: MotoServer) -> Iterator[Backend]:
    prefix = f"run-{time.monotonic_ns()}"
    extra: tuple[str, ...] = (
        "--storage",
        f"s3://{moto.bucket}/{prefix}",
        "--s3-endpoint",
        moto.endpoint,
    )
    if ctx.sizes.large < 256 << 20:  # --quick: small parts, so that the file still has some
        extra += ("--multipart-threshold", "16M", "--part-size", "8M")
    with embedded_server(ctx.fresh("srv"), extra) as backend:
        yield backend
    empty_bucket(moto)  # moto holds objects in memory: 1 GiB per round otherwise


def empty_bucket(moto: MotoServer) -> None:
    client = moto.client()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=moto.bucket):
        for obj in page.get("Contents", []):
            client.delete_object(Bucket=moto.bucket, Key=obj["Key"])
    uploads = client.list_multipart_uploads(Bucket=moto.bucket).get("Uploads", [])
    for up in uploads:
        client.abort_multipart_upload(Bucket=moto.bucket, Key=up["Key"], UploadId=up["UploadId"])


def ours_upload(
    ctx: Context, backend: Backend, paths: list[Path], expect: int, j: int, strategy: str
) -> Measured:
    """`synapse-tui upload --strategy ...` (cases.ours_upload plus the strategy)."""
    state = ctx.fresh("state")
    args = ["upload", *map(str, paths), "--json", "--chunk-size", size_arg(ctx.sizes.chunk)]
    args += ["--concurrency", str(j), "--strategy", strategy]
    m = run_measured(cli(*args), env=client_env(backend.url, backend.token, state))
    m.check(f"synapse-tui upload --strategy {strategy}")
    summary = next((e for e in m.json_lines() if e.get("event") == "summary"), None)
    if summary is None or summary.get("uploaded") != expect:
        raise RuntimeError(f"synapse-tui upload: expected {expect} uploads, got {summary}")
    shutil.rmtree(state, ignore_errors=True)
    return m


def sdk_bulk(python: str, backend: Backend, workers: int, paths: list[Path]) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNAPSE_")}
    env.pop("PYTHONPATH", None)
    cmd = [python, str(DRIVER), backend.url, backend.token, str(workers), *map(str, paths)]
    m: Measured = run_measured(cmd, env=env).check("synapse-sdk bulk driver")
    answer: Any = m.json_lines()[-1]
    if answer.get("failed") or answer.get("created") != answer.get("files"):
        raise RuntimeError(f"synapse-sdk bulk: {answer.get('errors')}")
    return float(answer["seconds"])


def moto_ceiling_large(moto: MotoServer, path: Path, workers: int) -> float:
    """boto3's own multipart upload (100 MiB parts, `workers` threads) straight to moto."""
    from boto3.s3.transfer import TransferConfig

    config = TransferConfig(
        multipart_threshold=100 << 20, multipart_chunksize=100 << 20, max_concurrency=workers
    )
    started = time.perf_counter()
    moto.client().upload_file(str(path), moto.bucket, "ceiling", Config=config)
    seconds = time.perf_counter() - started
    empty_bucket(moto)
    return seconds


def moto_ceiling_small(moto: MotoServer, folder: Path, workers: int) -> float:
    """boto3 put_object of every file straight to moto, `workers` threads."""
    client = moto.client()
    files = sorted(folder.iterdir())
    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(
            pool.map(
                lambda p: client.put_object(Bucket=moto.bucket, Key=p.name, Body=p.read_bytes()),
                files,
            )
        )
    seconds = time.perf_counter() - started
    empty_bucket(moto)
    return seconds


def case_presigned(ctx: Context) -> list[Row]:
    saved = {k: os.environ.get(k) for k in CREDENTIALS}
    os.environ.update(CREDENTIALS)  # for boto3 here and in the servers started from here
    try:
        with moto_server() as moto:
            return _large(ctx, moto) + _small(ctx, moto)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _three_rows(
    ctx: Context,
    name: str,
    unit: Callable[[float], str],
    results: dict[str, list[float]],
) -> list[Row]:
    ceiling = median(results["moto"])
    rows = []
    for side, label in (
        ("presigned", "synapse-tui presigned"),
        ("chunked", "synapse-tui chunked (API server, local disk)"),
        ("sdk", "synapse-sdk upload_files_bulk presigned"),
    ):
        if not results[side]:
            rows.append(Row(f"{name}: {label}", "-", "-", None, "info", f"skipped: {ctx.sdk_why}"))
            continue
        value = median(results[side])
        rows.append(
            Row(
                f"{name}: {label} vs moto's own speed",
                unit(value),
                unit(ceiling) + " (boto3 to moto)",
                value / ceiling,
                "info",
                "info",
                {"values": results[side], "moto": results["moto"], **_extra(results, side)},
            )
        )
    if results["sdk"]:
        p, t = median(results["presigned"]), median(results["sdk"])
        rows.append(
            Row(f"{name}: synapse-tui presigned vs synapse-sdk bulk", unit(p), unit(t), p / t,
                "info", "info")
        )  # fmt: skip
    return rows


def _extra(results: dict[str, list[float]], side: str) -> dict[str, Any]:
    return {k: v for k, v in results.items() if k.startswith(side + " peak")}


def _large(ctx: Context, moto: MotoServer) -> list[Row]:
    s = ctx.sizes
    big = ctx.large_file(s.large)
    results: dict[str, list[float]] = {k: [] for k in ("presigned", "chunked", "sdk", "moto")}
    results.update({"presigned peak RSS MiB": [], "chunked peak RSS MiB": []})

    def ours(strategy: str) -> Callable[[], None]:
        def run() -> None:
            with s3_backend(ctx, moto) as b:
                m = ours_upload(ctx, b, [big], 1, 4, strategy)
            shutil.rmtree(b.root, ignore_errors=True)
            results[strategy].append(s.large / summary_seconds(m))
            results[f"{strategy} peak RSS MiB"].append((m.peak_rss or 0) / (1 << 20))

        return run

    def sdk() -> None:
        if ctx.sdk is None:
            return
        with s3_backend(ctx, moto) as b:
            seconds = sdk_bulk(ctx.sdk, b, 4, [big])
        shutil.rmtree(b.root, ignore_errors=True)
        results["sdk"].append(s.large / seconds)

    def ceiling() -> None:
        results["moto"].append(s.large / moto_ceiling_large(moto, big, 4))

    interleave(ctx.rounds, [ours("presigned"), ours("chunked"), sdk, ceiling])
    name = f"8a one {fmt_size(s.large)} file, -j 4"
    return _three_rows(ctx, name, fmt_rate, results)


def _small(ctx: Context, moto: MotoServer) -> list[Row]:
    s = ctx.sizes
    folder = ctx.small_dir()
    j = s.concurrency_small
    results: dict[str, list[float]] = {k: [] for k in ("presigned", "chunked", "sdk", "moto")}

    def ours(strategy: str) -> Callable[[], None]:
        def run() -> None:
            with s3_backend(ctx, moto) as b:
                m = ours_upload(ctx, b, [folder], s.small_count, j, strategy)
            results[strategy].append(s.small_count / summary_seconds(m))

        return run

    def sdk() -> None:
        if ctx.sdk is None:
            return
        with s3_backend(ctx, moto) as b:
            seconds = sdk_bulk(ctx.sdk, b, j, [folder])
        results["sdk"].append(s.small_count / seconds)

    def ceiling() -> None:
        results["moto"].append(s.small_count / moto_ceiling_small(moto, folder, j))

    interleave(ctx.rounds, [ours("presigned"), ours("chunked"), sdk, ceiling])
    name = f"8b {s.small_count:,} x {fmt_size(s.small_size)}, -j {j}"
    return _three_rows(ctx, name, lambda v: f"{v:,.0f} files/s", results)
