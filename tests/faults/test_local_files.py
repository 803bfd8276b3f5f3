"""Local-file faults: files that change, odd sizes, special files, read errors, odd names."""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import stat
from pathlib import Path
from typing import Any

import pytest

from synapse_tui.engine.events import JobState
from tests.faults.crash import Cli
from tests.faults.helpers import (
    CHUNK,
    TimedProxy,
    assert_stored_once,
    make_file,
    payload,
    run_engine,
    uploads_named,
    via,
)
from tests.harness.drf import DrfServer
from tests.harness.proxy import Fault, Rule


def _on_put(proxy: TimedProxy, nth: int, action: object) -> None:
    """Run `action()` when the nth PUT arrives (the engine is waiting for its answer)."""
    count = 0

    def hook(method: str, path: str) -> None:
        nonlocal count
        if method == "PUT":
            count += 1
            if count == nth:
                action()  # type: ignore[operator]

    proxy.hooks.append(hook)


def _never_finalized(proxy: TimedProxy, drf: DrfServer, f: Path) -> None:
    assert [r for r in proxy.requests if r.method == "POST"] == []
    assert [u["status"] for u in uploads_named(drf.url, drf.token, f)] == [1]


def _flip_byte(f: Path, at: int, *, keep_mtime: bool) -> None:
    st = f.stat()
    with open(f, "r+b") as fh:
        fh.seek(at)
        old = fh.read(1)
        fh.seek(at)
        fh.write(bytes([old[0] ^ 0xFF]))
    if keep_mtime:
        os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))


async def test_changed_in_place_same_size(
    drf: DrfServer, proxy: TimedProxy, tmp_path: Path
) -> None:
    """A byte is rewritten while chunk 2 is in flight (mtime moves): "changed during
    upload", failed before chunk 3 is sent, never finalized."""
    f = make_file(tmp_path / "changed-in-place.bin", 4 * CHUNK)
    _on_put(proxy, 2, lambda: _flip_byte(f, 3 * CHUNK + 5, keep_mtime=False))
    out = await run_engine(via(proxy), drf.token, [f], tmp_path / "state")
    assert out.done == [] and len(out.failed) == 1
    assert "changed during upload: file was modified" in out.failed[0].error
    assert out.states() == [JobState.FAILED]
    assert len(proxy.puts()) == 2  # stopped at the next chunk boundary
    _never_finalized(proxy, drf, f)


async def test_changed_in_place_with_mtime_put_back(
    drf: DrfServer, proxy: TimedProxy, tmp_path: Path
) -> None:
    """Same size and the old mtime restored (stat sees nothing), in a part not sent yet:
    the sent bytes no longer hash to the pre-scan fingerprint, which is checked before
    finalize; never finalized. (A change to a part already sent, mtime restored, leaves
    the server with a consistent copy of the file as scanned: that is not detectable
    without re-reading the file and is not a corruption.)"""
    f = make_file(tmp_path / "changed-mtime-kept.bin", 4 * CHUNK)
    _on_put(proxy, 2, lambda: _flip_byte(f, 3 * CHUNK + 5, keep_mtime=True))
    out = await run_engine(via(proxy), drf.token, [f], tmp_path / "state")
    assert out.done == [] and len(out.failed) == 1
    assert "changed" in out.failed[0].error
    _never_finalized(proxy, drf, f)


@pytest.mark.parametrize("change", ["truncated", "appended"])
async def test_truncated_or_appended_during_upload(
    drf: DrfServer, proxy: TimedProxy, tmp_path: Path, change: str
) -> None:
    """The file shrinks (or grows) mid-upload: failed as changed, never finalized."""
    f = make_file(tmp_path / f"{change}.bin", 4 * CHUNK)

    def act() -> None:
        if change == "truncated":
            os.truncate(f, CHUNK + 10)
        else:
            with open(f, "ab") as fh:
                fh.write(b"more")

    _on_put(proxy, 2, act)
    out = await run_engine(via(proxy), drf.token, [f], tmp_path / "state")
    assert out.done == [] and len(out.failed) == 1
    words = ("shrank", "read 10") if change == "truncated" else ("grew",)
    error = out.failed[0].error
    assert "changed during upload" in error and any(w in error for w in words), error
    _never_finalized(proxy, drf, f)


async def test_replaced_between_runs_is_not_resumed(
    drf: DrfServer, proxy: TimedProxy, tmp_path: Path
) -> None:
    """Run 1 leaves the file paused at chunk 1. The file is then replaced (new inode, new
    content, same size). Uploading it again starts a new upload from byte 0; resuming the
    old job refuses it as replaced instead of mixing old and new bytes."""
    f = make_file(tmp_path / "replaced.bin", 3 * CHUNK)
    state = tmp_path / "state"
    proxy.add_rule(Rule(Fault("status", status=503), method="PUT", nth=2, times=1))
    proxy.add_rule(Rule(Fault("status", status=503), method="PUT"))
    first = await run_engine(via(proxy), drf.token, [f], state, retries=0)
    assert [e.resumable for e in first.failed] == [True]
    proxy.clear_rules()

    new = tmp_path / "replaced.new"
    new.write_bytes(payload(3 * CHUNK, seed=99))
    os.replace(new, f)
    second = await run_engine(via(proxy), drf.token, [f], state)
    assert [d.resumed_from for d in second.done] == [0], second.events
    assert_stored_once(drf, f, upload_id=second.done[0].upload_id)

    third = await run_engine(via(proxy), drf.token, [], state, resume=True)
    assert third.done == []
    assert len(third.failed) == 1 and "replaced" in third.failed[0].error


async def test_sizes_around_chunk_multiples(
    drf: DrfServer, proxy: TimedProxy, tmp_path: Path
) -> None:
    """1 byte, and exact multiples of the chunk size with one byte either side."""
    sizes = [1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK - 1, 2 * CHUNK, 2 * CHUNK + 1]
    files = [make_file(tmp_path / f"size-{n}.bin", n, seed=n) for n in sizes]
    out = await run_engine(via(proxy), drf.token, files, tmp_path / "state", concurrency=4)
    assert sorted(d.size for d in out.done) == sorted(sizes), out.failed
    for f in files:
        assert_stored_once(drf, f)
    ranges = sorted(r.headers["content-range"] for r in proxy.puts())
    assert f"bytes {CHUNK}-{2 * CHUNK - 1}/{2 * CHUNK}" in ranges
    assert f"bytes {2 * CHUNK}-{2 * CHUNK}/{2 * CHUNK + 1}" in ranges
    assert all(not r.startswith("bytes 0--") for r in ranges)


async def test_empty_file(drf: DrfServer, proxy: TimedProxy, tmp_path: Path) -> None:
    """An empty file: drf-chunked-upload refuses empty files ("The submitted file is
    empty."), so it is reported with that reason -- not retried, not resumable, never
    hanging -- and the batch goes on."""
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    other = make_file(tmp_path / "after-empty.bin", 100)
    out = await run_engine(via(proxy), drf.token, [empty, other], tmp_path / "state")
    assert [d.path for d in out.done if d.size == 100] == [str(other)]
    failed = [e for e in out.failed if e.path == str(empty)]
    skipped = [e for e in out.skipped if e.path == str(empty)]
    assert len(failed) + len(skipped) == 1, out.events
    reason = failed[0].error if failed else skipped[0].reason
    assert "empty" in reason and not (failed and failed[0].resumable)
    assert_stored_once(drf, other)


async def test_sparse_file_over_4gib_uses_64bit_offsets(tmp_path: Path) -> None:
    """A sparse 5 GiB file. Uploading it for real would write 5 GiB on this machine, so
    the engine sends one 8 MiB chunk at byte 4 GiB + 64 KiB to an httpx MockTransport:
    the Content-Range carries the 64-bit numbers, the bytes read come from that offset,
    and memory stays bounded (the chunk is streamed in pieces, never held whole)."""
    import tracemalloc

    import httpx

    from synapse_tui.engine.events import Event
    from synapse_tui.engine.hashing import HashPair, Identity
    from synapse_tui.engine.uploader import FileUpload, Job
    from tests.faults.helpers import make_manager

    size = 5 * 1024**3
    start = 4 * 1024**3 + CHUNK
    chunk = 8 * 1024 * 1024
    f = tmp_path / "sparse.bin"
    with open(f, "wb") as fh:
        fh.truncate(size)
        fh.seek(start)
        fh.write(b"marker")
    seen: dict[str, object] = {}

    class Streaming(httpx.AsyncBaseTransport):
        """Consumes the body piece by piece (MockTransport would read it whole first)."""

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            total = biggest = 0
            marker = False
            async for piece in request.stream:  # type: ignore[union-attr]
                marker = marker or b"marker" in piece
                total += len(piece)
                biggest = max(biggest, len(piece))
            seen.update(range=request.headers["content-range"], total=total)
            seen.update(biggest=biggest, marker=marker)
            body = {"id": "u1", "url": "https://example.test/api/chunked_upload/u1/"}
            return httpx.Response(200, json={**body, "offset": start + chunk, "status": 1})

    events: list[Event] = []
    manager = make_manager(
        "https://example.test/api",
        "tok",
        tmp_path / "state",
        events,
        transport=Streaming(),
        chunk_size=chunk,
    )
    st = f.stat()
    rec = manager.journal.add_job(bytes(f), Identity.of(st), "0" * 32, manager.options.host, chunk)
    job = Job(rec.id, bytes(f), size, Identity.of(st), "0" * 32, chunk)
    job.upload_id, job.upload_url = "u1", "https://example.test/api/chunked_upload/u1/"
    job.offset = job.sent = start
    job.hashes = HashPair(position=start)
    upload = FileUpload(manager, job)
    upload.fd = os.open(f, os.O_RDONLY)
    tracemalloc.start()
    try:
        await upload._send_chunk()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        os.close(upload.fd)
        await manager.client.aclose()
        manager.journal.close()
    assert seen["range"] == f"bytes {start}-{start + chunk - 1}/{size}"
    assert job.offset == start + chunk
    assert int(seen["total"]) > chunk and seen["marker"]  # type: ignore[call-overload]
    assert int(seen["biggest"]) <= 1024 * 1024 + 4096  # type: ignore[call-overload]
    assert peak < 6 * 1024 * 1024, f"peak traced memory {peak} for an 8 MiB chunk"


def _make_specials(tmp_path: Path) -> dict[str, Path]:
    loop_a, loop_b = tmp_path / "loop-a", tmp_path / "loop-b"
    loop_a.symlink_to(loop_b)
    loop_b.symlink_to(loop_a)
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    sock_path = tmp_path / "sock"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(sock_path))
    sock.close()
    folder = tmp_path / "dir-loop"
    folder.mkdir()
    (folder / "up").symlink_to(folder)
    return {
        "symbolic link loop": loop_a,
        "dangling symbolic link": dangling,
        "FIFO": fifo,
        "socket": sock_path,
        "kernel filesystem": Path("/dev/zero"),
        "kernel filesystem ": Path("/proc/self/status"),
    }


async def test_special_files_are_refused_without_blocking(
    drf: DrfServer, proxy: TimedProxy, tmp_path: Path
) -> None:
    """Symlink loops, dangling links, a FIFO (nobody writes it: opening it would block),
    a socket, /dev/zero (endless) and /proc/self/status (lies about its size): each is
    refused by name with a reason, within a deadline, and nothing is sent."""
    specials = _make_specials(tmp_path)
    out = await asyncio.wait_for(
        run_engine(via(proxy), drf.token, list(specials.values()), tmp_path / "state"), 20
    )
    reasons = {e.path: e.error for e in out.failed}
    for word, path in specials.items():
        assert word.strip() in reasons.get(str(path), ""), (path, reasons)
    assert out.done == [] and out.jobs() == []
    assert [r for r in proxy.requests if r.method != "GET"] == []


async def test_special_files_inside_a_folder_are_skipped(
    drf: DrfServer, proxy: TimedProxy, tmp_path: Path
) -> None:
    """Found while walking a folder, the same entries are skipped with a notice (the
    folder's regular file still uploads) and a link back to a parent folder ends."""
    folder = tmp_path / "mixed"
    folder.mkdir()
    _make_specials(folder)
    (folder / "regular.bin").write_bytes(payload(1000, seed=5))
    out = await asyncio.wait_for(
        run_engine(via(proxy), drf.token, [folder], tmp_path / "state"), 20
    )
    assert [Path(d.path).name for d in out.done] == ["regular.bin"], out.events
    assert out.failed == []
    assert len(out.skipped) >= 5


async def test_unreadable_file(
    drf: DrfServer, proxy: TimedProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tests run as root, so permissions cannot make a file unreadable: os.open raises
    EACCES for it instead. It fails with "Permission denied"; the other file uploads."""
    from synapse_tui.engine import hashing

    bad = make_file(tmp_path / "unreadable.bin", 1000)
    good = make_file(tmp_path / "readable.bin", 1000, seed=1)
    real_open = os.open

    def guarded_open(path: object, flags: int, *args: object) -> int:
        if os.fsencode(path) == os.fsencode(bad):  # type: ignore[arg-type]
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, flags, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(hashing, "_open", guarded_open)  # the engine's seam, not os.open
    out = await run_engine(via(proxy), drf.token, [bad, good], tmp_path / "state")
    assert [d.path for d in out.done] == [str(good)]
    assert [(e.path, "Permission denied" in e.error) for e in out.failed] == [(str(bad), True)]


async def test_io_error_mid_read(
    drf: DrfServer, proxy: TimedProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pread raises EIO when the upload reaches chunk 3: the file fails with the read
    error and its offset, is not finalized, and the batch goes on."""
    from synapse_tui.engine import hashing

    bad = make_file(tmp_path / "eio.bin", 4 * CHUNK)
    good = make_file(tmp_path / "eio-neighbour.bin", 2 * CHUNK, seed=3)
    real_pread = os.pread

    def failing_pread(fd: int, n: int, offset: int) -> bytes:
        if offset >= 2 * CHUNK and os.readlink(f"/proc/self/fd/{fd}") == str(bad):
            raise OSError(errno.EIO, "Input/output error")
        return real_pread(fd, n, offset)

    monkeypatch.setattr(hashing, "_pread", failing_pread)  # the engine's seam, not os.pread
    out = await run_engine(via(proxy), drf.token, [bad, good], tmp_path / "state")
    assert [d.path for d in out.done] == [str(good)]
    [failed] = out.failed
    assert failed.path == str(bad) and not failed.resumable
    assert "Input/output error" in failed.error and str(2 * CHUNK) in failed.error
    assert [u["status"] for u in uploads_named(drf.url, drf.token, bad)] == [1]
    assert_stored_once(drf, good)


NASTY = {
    "invalid-utf8": b"bad-\xff\xfe-name.bin",
    "escape": b"red-\x1b[31m-\x1b]0;title\x07.bin",
    "cr-lf": b"line1\rline2\nline3.bin",
    "long": b"\xc3" * 250 + b".bin",  # 250 bytes that are not UTF-8: 1000 chars escaped
}


def _no_raw_controls(text: str) -> None:
    for ch in ("\x1b", "\x07", "\r"):
        assert ch not in text, f"raw {ch!r} in output"


@pytest.mark.parametrize("json_mode", [True, False], ids=["json", "text"])
def test_nasty_names_are_escaped_everywhere(
    drf: DrfServer, tmp_path: Path, json_mode: bool
) -> None:
    """Names that are not UTF-8, hold ESC/BEL/CR/LF, or escape to over 255 characters:
    uploaded, shown escaped on one line in the JSON and text output and in `status`, and
    sent to the server as an escaped name of at most 255 characters."""
    folder = tmp_path / ("json" if json_mode else "text")
    folder.mkdir()
    paths = []
    for i, name in enumerate(NASTY.values()):
        p = os.path.join(os.fsencode(folder), name)
        with open(p, "wb") as fh:
            fh.write(payload(500 + i, seed=i))
        paths.append(p)
    cli = Cli(drf.url, drf.token, tmp_path / "state")
    args: list[str | bytes] = ["upload", os.fsencode(folder)]
    if json_mode:
        args.append("--json")
    result = cli.run(*args)
    assert result.returncode == 0, result.stderr
    _no_raw_controls(result.stdout + result.stderr)
    if json_mode:
        done = result.of("file_done")
        assert len(done) == len(NASTY)
        shown = {d["path"] for d in done}
        assert any("\\xff\\xfe" in s for s in shown), shown
        assert any("\\e[31m" in s for s in shown), shown
        assert any("line1\\rline2\\nline3" in s for s in shown), shown
    else:
        assert "line1\\rline2\\nline3.bin" in result.stdout
        assert "\\e[31m" in result.stdout
        assert result.stdout.count("\n") == len(result.stdout.splitlines())
    status = cli.run("status", "--all")
    _no_raw_controls(status.stdout)
    assert "line1\\rline2\\nline3.bin" in status.stdout
    names = {u["filename"] for u in _all_uploads(drf)}
    for p in paths:
        stored = [
            u for u in _all_uploads(drf) if u["status"] == 2 and u["offset"] == os.stat(p).st_size
        ]
        assert stored, p
    assert all(len(n) <= 255 for n in names)
    assert all("\x1b" not in n and "\n" not in n and "\r" not in n for n in names)


def _all_uploads(drf: DrfServer) -> list[dict[str, Any]]:
    from tests.faults.helpers import server_uploads

    return server_uploads(drf.url, drf.token)


def test_fifo_named_on_the_command_line_does_not_block(drf: DrfServer, tmp_path: Path) -> None:
    """The CLI given a FIFO nobody writes to: refused at once (exit 1), not blocked."""
    fifo = tmp_path / "cli-fifo"
    os.mkfifo(fifo)
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    result = Cli(drf.url, drf.token, tmp_path / "state").run(
        "upload", str(fifo), "/dev/zero", "--json", timeout=30
    )
    assert result.returncode == 1, result.stderr
    assert [e["path"] for e in result.of("file_failed")] == [str(fifo), "/dev/zero"]
