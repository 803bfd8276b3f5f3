"""The backend's CPU per small file: `python -m tests.bench.server_cpu [--files N] [--rounds R]`.

A fresh `synapse-tui serve` (its own process) takes N files of 20 KiB from a lean client
(raw HTTP/1.1 on keep-alive sockets, C connections, so the client's own CPU barely takes
from the server's), in the two shapes clients send: `whole` (one multipart POST of
`chunked_upload/` with filename, file and md5: our engine's small files) and `sdk` (the
official client's PUT of the first and only chunk, then the POST that finalizes it with
the MD5). Prints the backend's user + system CPU per file (from /proc), its wall time
and the load, per round and the medians. `--profile DIR` records the backend with py-spy
(raw stacks per shape; `--perf`: `perf record -g`, the kernel's side too).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

from tests.bench.cpu_split import cpu_seconds
from tests.bench.support import TOKEN, embedded_server

SIZE = 20 * 1024
SHAPES = ("whole", "sdk")


def _multipart(fields: dict[str, str], data: bytes, name: str) -> tuple[bytes, str]:
    boundary = "bench-" + os.urandom(8).hex()
    out = bytearray()
    for key, value in fields.items():
        out += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'
        ).encode()
    out += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    out += data + f"\r\n--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"


def _request(
    method: str, path: str, host: str, body: bytes, content_type: str, *extra: str
) -> bytes:
    head = [
        f"{method} {path} HTTP/1.1",
        f"Host: {host}",
        f"Authorization: Token {TOKEN}",
        "Accept: */*",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body)}",
        *extra,
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def _answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        if line.lower().startswith("content-length:"):
            length = int(line.split(":", 1)[1])
    return status, await reader.readexactly(length)


async def _client(url: str, shape: str, files: int, connections: int) -> None:
    parts = urlsplit(url)
    host = parts.netloc
    base = parts.path.rstrip("/") + "/chunked_upload/"
    payloads = [os.urandom(SIZE) for _ in range(16)]
    queue = iter(range(files))

    async def one_connection() -> None:
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        try:
            for i in queue:
                data = payloads[i % len(payloads)]
                md5 = hashlib.md5(data).hexdigest()
                name = f"file-{i:07d}.bin"
                if shape == "whole":
                    body, ctype = _multipart({"filename": name, "md5": md5}, data, name)
                    writer.write(_request("POST", base, host, body, ctype))
                    status, answer = await _answer(reader)
                    if status != 200:
                        raise RuntimeError(f"POST answered {status}: {answer[:300]!r}")
                    continue
                body, ctype = _multipart({"filename": name}, data, "file")
                rng = f"Content-Range: bytes 0-{SIZE - 1}/{SIZE}"
                writer.write(_request("PUT", base, host, body, ctype, rng))
                status, answer = await _answer(reader)
                if status != 200:
                    raise RuntimeError(f"PUT answered {status}: {answer[:300]!r}")
                target = urlsplit(json.loads(answer)["url"]).path
                form = f"md5={md5}".encode()
                writer.write(
                    _request("POST", target, host, form, "application/x-www-form-urlencoded")
                )
                status, answer = await _answer(reader)
                if status != 200:
                    raise RuntimeError(f"finalize answered {status}: {answer[:300]!r}")
        finally:
            writer.close()

    await asyncio.gather(*(one_connection() for _ in range(connections)))


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds (on-CPU time from /proc schedstat, to the nanosecond) of the process's
    main thread, which runs the event loop, and of all its other threads together."""
    out = {"loop": 0.0, "threads": 0.0}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            ns = int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
        out["loop" if task.name == str(pid) else "threads"] += ns / 1e9
    return out


def one_round(
    work: Path, shape: str, files: int, connections: int, profile: Path | None, perf: bool
) -> dict[str, float]:
    with embedded_server(work / f"srv-{shape}-{time.monotonic_ns()}") as backend:
        assert backend.proc is not None
        spy = None
        if profile is not None:
            out = profile / shape
            record = (
                ["perf", "record", "-g", "-p", str(backend.proc.pid), "-o", f"{out}.perf"]
                if perf
                else [
                    str(Path(shutil.which("py-spy") or "py-spy")),
                    "record", "--pid", str(backend.proc.pid), "--rate", "250", "--threads", "--gil",
                    "--format", "raw", "-o", f"{out}.txt",
                ]
            )  # fmt: skip
            spy = subprocess.Popen(record, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.0)
        before = cpu_seconds(backend.proc.pid) or 0.0
        split_before = thread_cpu(backend.proc.pid)
        started = time.perf_counter()
        asyncio.run(_client(backend.url, shape, files, connections))
        wall = time.perf_counter() - started
        server = (cpu_seconds(backend.proc.pid) or 0.0) - before
        split = {k: v - split_before[k] for k, v in thread_cpu(backend.proc.pid).items()}
        if spy is not None:
            spy.send_signal(2)
            spy.wait(60)
    return {"wall": wall, "server": server, **split}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.bench.server_cpu", description=__doc__)
    p.add_argument("--files", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--shape", choices=SHAPES, action="append")
    p.add_argument("--profile", type=Path, help="record a profile per shape into this folder")
    p.add_argument("--perf", action="store_true", help="profile with `perf record -g`, not py-spy")
    args = p.parse_args(argv)
    shapes = args.shape or list(SHAPES)
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="server-cpu-"))
    rows: dict[str, list[dict[str, float]]] = {s: [] for s in shapes}
    try:
        for i in range(args.rounds):
            for shape in shapes:
                row = one_round(work, shape, args.files, args.connections, args.profile, args.perf)
                rows[shape].append(row)
                print(
                    f"round {i + 1} {shape}: backend {row['server'] * 1000 / args.files:.3f}"
                    f" ms CPU/file ("
                    + ", ".join(f"{k} {row[k] * 1000 / args.files:.3f}" for k in list(row)[2:])
                    + f"), wall {row['wall']:.2f} s, load {os.getloadavg()[0]:.1f}",
                    flush=True,
                )
        for shape in shapes:
            cpu = statistics.median(r["server"] for r in rows[shape]) * 1000 / args.files
            wall = statistics.median(r["wall"] for r in rows[shape])
            print(f"median {shape}: backend {cpu:.3f} ms CPU/file, wall {wall:.2f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)  # all at once, at the end (see cpu_split)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
