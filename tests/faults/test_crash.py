"""Crash points: the CLI is SIGKILLed (or interrupted) at chosen points, then resumed.

Each scenario runs the CLI in a subprocess through a proxy that records every request.
After the crash, `synapse-tui status --json` must tell the truth, `synapse-tui resume`
must finish the file with at most one chunk sent twice (PUT body bytes over both runs
<= file size + one chunk + multipart framing), and the server must hold exactly one
complete upload with the file's bytes.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.faults.crash import Cli, wait_for
from tests.faults.helpers import (
    CHUNK,
    MULTIPART_OVERHEAD,
    TimedProxy,
    assert_stored_once,
    make_file,
    uploads_named,
)
from tests.harness.drf import DrfServer
from tests.harness.proxy import Fault, RequestRecord, Rule, ThreadedFaultProxy

SIZE = 4 * CHUNK + 100
UPLOAD = ("--json", "--chunk-size", "64K")


@contextmanager
def recording_proxy(port: int) -> Iterator[ThreadedFaultProxy]:
    """A ThreadedFaultProxy whose proxy is a TimedProxy (held PUTs, arrival hooks)."""
    tp = ThreadedFaultProxy("127.0.0.1", port)
    tp.proxy = TimedProxy("127.0.0.1", port)
    with tp:
        yield tp


def release(tp: ThreadedFaultProxy) -> None:
    proxy = tp.proxy
    assert isinstance(proxy, TimedProxy) and tp._loop is not None
    tp._loop.call_soon_threadsafe(proxy.release.set)


def puts(tp: ThreadedFaultProxy) -> list[RequestRecord]:
    return [r for r in tp.requests if r.method == "PUT"]


def answered(tp: ThreadedFaultProxy, method: str, nth: int) -> bool:
    """The server has answered the nth `method` request (the proxy may hold the answer)."""
    seen = [r for r in tp.requests if r.method == method]
    return len(seen) >= nth and seen[nth - 1].status is not None


def assert_at_most_one_chunk_resent(tp: ThreadedFaultProxy, size: int) -> None:
    records = [r for r in tp.requests if r.method == "PUT"]
    sent = sum(r.body_length or 0 for r in records)
    assert sent <= size + CHUNK + len(records) * MULTIPART_OVERHEAD, (sent, size)


def state_of(cli: Cli, path: Path) -> dict[str, object]:
    [row] = [r for r in cli.status() if r["path"] == str(path)]
    return row


def finish_with_resume(cli: Cli, tp: ThreadedFaultProxy, drf: DrfServer, f: Path) -> dict:
    tp.clear_rules()
    result = cli.run("resume", "--json")
    assert result.returncode == 0, (result.stdout, result.stderr)
    [done] = result.of("file_done")
    assert done["path"] == str(f)
    assert_stored_once(drf, f, upload_id=done["upload_id"])
    assert_at_most_one_chunk_resent(tp, f.stat().st_size)
    row = state_of(cli, f)
    assert (row["state"], row["offset"], row["upload_id"]) == ("done", SIZE, done["upload_id"])
    return done


def test_kill_after_chunk_sent_before_journal_noted_it(drf: DrfServer, tmp_path: Path) -> None:
    """SIGKILL while the server has applied PUT 3 but its answer is held: the journal says
    2 chunks, the server 3. `status` shows the job interrupted at the journal's offset;
    `resume` adopts the server's offset and sends no chunk twice."""
    f = make_file(tmp_path / "crash-after-send.bin", SIZE)
    with recording_proxy(drf.port) as tp:
        tp.add_rule(Rule(Fault("delay_response", seconds=60), method="PUT", nth=3))
        cli = Cli(tp.url + "/api", drf.token, tmp_path / "state")
        run = cli.start("upload", str(f), *UPLOAD)
        try:
            wait_for(lambda: answered(tp, "PUT", 3), 30, "the server to apply PUT 3")
            assert state_of(cli, f)["state"] == "uploading"  # alive: the lock is held
        finally:
            killed = run.kill()
        assert killed.returncode == -signal.SIGKILL
        row = state_of(cli, f)
        assert (row["state"], row["offset"]) == ("interrupted", 2 * CHUNK)
        done = finish_with_resume(cli, tp, drf, f)
        assert done["resumed_from"] == 3 * CHUNK
        assert len(puts(tp)) == 5  # 3 before the crash, 2 after: none twice


def test_kill_mid_chunk_body(drf: DrfServer, tmp_path: Path) -> None:
    """SIGKILL while the server has all of PUT 3 but its last byte: the chunk never
    lands; `status` shows 2 chunks; `resume` sends exactly that chunk again (the one
    allowed re-send) and the rest once."""
    f = make_file(tmp_path / "crash-mid-body.bin", SIZE)
    with recording_proxy(drf.port) as tp:
        proxy = tp.proxy
        assert isinstance(proxy, TimedProxy)
        proxy.hold_put(3, release_on_get=False)  # never released: the body stays cut
        cli = Cli(tp.url + "/api", drf.token, tmp_path / "state")
        cli.kill_when(proxy.holding.is_set, "PUT 3 to be held", "upload", str(f), *UPLOAD)
        row = state_of(cli, f)
        assert (row["state"], row["offset"]) == ("interrupted", 2 * CHUNK)
        done = finish_with_resume(cli, tp, drf, f)
        assert done["resumed_from"] == 2 * CHUNK
        starts = [int(r.headers["content-range"].split()[1].split("-")[0]) for r in puts(tp)]
        assert starts == [0, CHUNK, 2 * CHUNK, 2 * CHUNK, 3 * CHUNK, 4 * CHUNK]


@pytest.mark.parametrize(
    ("column", "nth", "journal_offset", "journal_id", "resumed_from"),
    [("offset", 2, CHUNK, True, 2 * CHUNK), ("upload_id", 1, 0, False, CHUNK)],
    ids=["offset-write", "upload-id-write"],
)
def test_kill_during_a_journal_write(
    drf: DrfServer,
    tmp_path: Path,
    column: str,
    nth: int,
    journal_offset: int,
    journal_id: bool,
    resumed_from: int,
) -> None:
    """SIGKILL inside the transaction that records the 2nd chunk's offset (or the new
    upload's id), after the UPDATE and before COMMIT: the journal stays readable and
    keeps its previous values; `resume` finishes with no chunk sent twice and no second
    upload."""
    f = make_file(tmp_path / f"crash-journal-{column}.bin", SIZE)
    with recording_proxy(drf.port) as tp:
        cli = Cli(tp.url + "/api", drf.token, tmp_path / "state")
        killed = cli.run(
            "upload",
            str(f),
            *UPLOAD,
            wrapper=["--kill-in-journal-update", str(nth), "--when", column],
        )
        assert killed.returncode == -signal.SIGKILL, killed.stderr
        row = state_of(cli, f)
        assert (row["state"], row["offset"]) == ("interrupted", journal_offset)
        assert bool(row["upload_id"]) is journal_id
        assert len(puts(tp)) == journal_offset // CHUNK + 1
        done = finish_with_resume(cli, tp, drf, f)
        assert done["resumed_from"] == resumed_from
        assert len(uploads_named(drf.url, drf.token, f)) == 1


def test_kill_while_recording_completion(drf: DrfServer, tmp_path: Path) -> None:
    """SIGKILL inside the transaction that marks the job done (finalized on the server):
    `status` still shows it unfinished; `resume` learns it is complete and records it."""
    f = make_file(tmp_path / "crash-journal-complete.bin", SIZE)
    with recording_proxy(drf.port) as tp:
        cli = Cli(tp.url + "/api", drf.token, tmp_path / "state")
        killed = cli.run("upload", str(f), *UPLOAD, wrapper=["--kill-in-journal-complete"])
        assert killed.returncode == -signal.SIGKILL, killed.stderr
        assert state_of(cli, f)["state"] == "interrupted"
        finish_with_resume(cli, tp, drf, f)
        assert len(puts(tp)) == 5
        assert [r.method for r in tp.requests].count("POST") == 1


def test_kill_after_the_finalize_request(drf: DrfServer, tmp_path: Path) -> None:
    """SIGKILL after the server completed the upload but before the answer arrived:
    `resume` sees it complete, records it, and sends no chunk and no second upload."""
    f = make_file(tmp_path / "crash-after-finalize.bin", SIZE)
    with recording_proxy(drf.port) as tp:
        tp.add_rule(Rule(Fault("delay_response", seconds=60), method="POST", nth=1))
        cli = Cli(tp.url + "/api", drf.token, tmp_path / "state")
        cli.kill_when(
            lambda: answered(tp, "POST", 1), "the server to finalize", "upload", str(f), *UPLOAD
        )
        assert state_of(cli, f)["state"] == "interrupted"
        before = len(puts(tp))
        finish_with_resume(cli, tp, drf, f)
        assert len(puts(tp)) == before == 5
        assert [r.method for r in tp.requests].count("POST") == 1
        assert len(uploads_named(drf.url, drf.token, f)) == 1


def test_kill_between_creating_the_upload_and_recording_its_id(
    drf: DrfServer, tmp_path: Path
) -> None:
    """SIGKILL after the creating PUT was applied but before its id was journaled:
    `resume` finds that upload on the server (name, size of a first chunk) and goes on
    with it -- no second upload is created."""
    f = make_file(tmp_path / "crash-before-id.bin", SIZE)
    with recording_proxy(drf.port) as tp:
        tp.add_rule(Rule(Fault("delay_response", seconds=60), method="PUT", nth=1))
        cli = Cli(tp.url + "/api", drf.token, tmp_path / "state")
        cli.kill_when(
            lambda: answered(tp, "PUT", 1),
            "the server to create the upload",
            "upload",
            str(f),
            *UPLOAD,
        )
        row = state_of(cli, f)
        assert (row["state"], row["upload_id"], row["offset"]) == ("interrupted", None, 0)
        done = finish_with_resume(cli, tp, drf, f)
        assert done["resumed_from"] == CHUNK
        assert len(uploads_named(drf.url, drf.token, f)) == 1


def test_ctrl_c_stops_within_5s_saves_state_and_says_how_to_resume(
    drf: DrfServer, tmp_path: Path
) -> None:
    """SIGINT while PUT 2's answer stalls: exit 130 within 5 s, the job paused in the
    journal, a message naming `synapse-tui resume`; resume then finishes the file."""
    f = make_file(tmp_path / "ctrl-c.bin", SIZE)
    with recording_proxy(drf.port) as tp:
        tp.add_rule(Rule(Fault("stall", seconds=0), method="PUT", nth=2))
        cli = Cli(tp.url + "/api", drf.token, tmp_path / "state")
        run = cli.start("upload", str(f), *UPLOAD)
        try:
            wait_for(lambda: len(puts(tp)) >= 2, 30, "PUT 2")
            sent = time.monotonic()
            run.interrupt()
            result = run.collect(timeout=10)
            assert time.monotonic() - sent < 5
        finally:
            run.ensure_dead()
        assert result.returncode == 130, result.stderr
        assert "synapse-tui resume" in result.stderr
        assert state_of(cli, f)["state"] == "paused"
        finish_with_resume(cli, tp, drf, f)


def test_second_ctrl_c_forces_exit(drf: DrfServer, tmp_path: Path) -> None:
    """Two SIGINTs in a row: the process is gone at once with 130, and resume still works."""
    f = make_file(tmp_path / "ctrl-c-twice.bin", SIZE)
    with recording_proxy(drf.port) as tp:
        tp.add_rule(Rule(Fault("stall", seconds=0), method="PUT", nth=2))
        cli = Cli(tp.url + "/api", drf.token, tmp_path / "state")
        run = cli.start("upload", str(f), *UPLOAD)
        try:
            wait_for(lambda: len(puts(tp)) >= 2, 30, "PUT 2")
            run.interrupt()
            run.interrupt()
            result = run.collect(timeout=5)
        finally:
            run.ensure_dead()
        assert result.returncode == 130
        finish_with_resume(cli, tp, drf, f)


def test_two_processes_on_one_state_folder(drf: DrfServer, tmp_path: Path) -> None:
    """While one process uploads a file, a second `resume` on the same state folder leaves
    it alone (another process drives it) and says so (exit 1: it uploaded nothing); the
    first finishes; one upload on the server."""
    f = make_file(tmp_path / "two-processes.bin", SIZE)
    with recording_proxy(drf.port) as tp:
        proxy = tp.proxy
        assert isinstance(proxy, TimedProxy)
        proxy.hold_put(2, release_on_get=False)
        cli = Cli(tp.url + "/api", drf.token, tmp_path / "state")
        first = cli.start("upload", str(f), *UPLOAD)
        try:
            wait_for(proxy.holding.is_set, 30, "PUT 2 to be held")
            second = cli.run("resume", "--json")
            during = state_of(cli, f)["state"]
            release(tp)
            result = first.collect(timeout=30)
        finally:
            first.ensure_dead()
        # It uploaded nothing: exit 1, the file counted as left to the other process.
        assert second.returncode == 1, second.stderr
        assert second.summary["elsewhere"] == 1
        [elsewhere] = second.of("file_elsewhere")
        assert elsewhere["path"] == str(f)
        assert "another synapse-tui drives it" in elsewhere["reason"]
        assert second.of("file_done") == [] and second.of("file_failed") == []
        assert during == "uploading"  # the second process did not rewrite the job's state
        assert result.returncode == 0, result.stderr
        assert len(puts(tp)) == 5
        assert_stored_once(drf, f)
        assert state_of(cli, f)["state"] == "done"
