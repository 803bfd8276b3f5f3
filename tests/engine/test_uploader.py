"""The upload state machine against an in-memory server: recoveries, retries and stops."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path

import httpx
import pytest

from synapse_tui.engine.events import (
    Event,
    FatalStop,
    JobDone,
    JobFailed,
    JobSkipped,
    JobState,
    LogMessage,
    TotalProgress,
)
from synapse_tui.engine.journal import Journal
from synapse_tui.engine.limits import Backoff
from synapse_tui.engine.protocol import Credentials, ProtocolClient
from synapse_tui.engine.scheduler import EngineOptions, UploadManager
from tests.engine.fakeserver import ROOT, FakeServer, lose_answer

CHUNK = 64 * 1024


def make_file(tmp_path: Path, name: str, size: int) -> Path:
    path = tmp_path / name
    path.write_bytes(os.urandom(size))
    return path


def manager(
    server: FakeServer, state: Path, events: list[Event], **options: object
) -> UploadManager:
    client = ProtocolClient(ROOT, Credentials(access_token="t0ken"), transport=server.transport())
    opts = EngineOptions(
        host=ROOT,
        chunk_size=CHUNK,
        concurrency=2,
        backoff_base=0.001,
        backoff_cap=0.002,
        settle_delay=0.0,
        tick=0.05,
    )
    for key, value in options.items():
        setattr(opts, key, value)
    return UploadManager(client, Journal(state), opts, [events.append])


async def upload(
    server: FakeServer, state: Path, paths: list[Path], **options: object
) -> list[Event]:
    events: list[Event] = []
    async with manager(server, state, events, **options) as m:
        await m.add_paths([str(p) for p in paths])
        await m.wait_idle()
    return events


async def resume(server: FakeServer, state: Path, jobs: int = 1) -> list[Event]:
    """`resume`: a new manager picks up the journal's unfinished jobs."""
    events: list[Event] = []
    async with manager(server, state, events) as m:
        assert m.resume_unfinished() == jobs
        await m.wait_idle()
    return events


def done(events: list[Event]) -> list[JobDone]:
    return [e for e in events if isinstance(e, JobDone)]


def stored(server: FakeServer, event: JobDone) -> bytes:
    return bytes(server.uploads[event.upload_id].data)


async def test_multi_chunk_upload_lands_intact(tmp_path: Path) -> None:
    server = FakeServer()
    src = make_file(tmp_path, "a.bin", 3 * CHUNK + 17)
    events = await upload(server, tmp_path / "state", [src])
    [ev] = done(events)
    assert stored(server, ev) == src.read_bytes()
    assert ev.md5 == hashlib.md5(src.read_bytes()).hexdigest()
    assert [c[2] for c in server.calls if c[0] == "PUT"] == [
        f"bytes 0-{CHUNK - 1}/{3 * CHUNK + 17}",
        f"bytes {CHUNK}-{2 * CHUNK - 1}/{3 * CHUNK + 17}",
        f"bytes {2 * CHUNK}-{3 * CHUNK - 1}/{3 * CHUNK + 17}",
        f"bytes {3 * CHUNK}-{3 * CHUNK + 16}/{3 * CHUNK + 17}",
    ]


@pytest.mark.parametrize("size", [CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 1])
async def test_sizes_around_chunk_multiples(tmp_path: Path, size: int) -> None:
    server = FakeServer()
    src = make_file(tmp_path, "a.bin", size)
    [ev] = done(await upload(server, tmp_path / "state", [src]))
    assert stored(server, ev) == src.read_bytes()
    if size <= CHUNK:  # one chunk's worth goes whole, in a single POST
        assert server.counts.get("PUT", 0) == 0 and server.counts["POST"] == 1
    else:
        assert server.counts["PUT"] == -(-size // CHUNK)


async def test_lost_acknowledgement_counts_as_progress(tmp_path: Path) -> None:
    server = FakeServer()
    server.after[("PUT", 2)] = lose_answer  # chunk 2 lands, its answer is lost
    src = make_file(tmp_path, "a.bin", 4 * CHUNK)
    events = await upload(server, tmp_path / "state", [src])
    [ev] = done(events)
    assert stored(server, ev) == src.read_bytes()
    assert server.put_bytes == src.stat().st_size  # nothing sent twice
    assert any("lost acknowledgement" in e.message for e in events if isinstance(e, LogMessage))


async def test_server_offset_lower_than_ours_resends_from_there(tmp_path: Path) -> None:
    server = FakeServer()
    src = make_file(tmp_path, "a.bin", 4 * CHUNK)

    def rewind(request: httpx.Request, response: httpx.Response) -> None:
        upload = next(iter(server.uploads.values()))
        del upload.data[CHUNK:]  # the server lost chunks 2 and 3 (restored from a backup)

    server.after[("PUT", 3)] = rewind
    [ev] = done(await upload(server, tmp_path / "state", [src]))
    assert stored(server, ev) == src.read_bytes()


async def test_offset_beyond_the_chunk_starts_a_new_upload(tmp_path: Path) -> None:
    server = FakeServer()
    src = make_file(tmp_path, "a.bin", 3 * CHUNK)

    def garble(request: httpx.Request, response: httpx.Response) -> None:
        upload = next(iter(server.uploads.values()))
        upload.data += b"x" * (CHUNK // 2)  # someone else wrote half a chunk

    server.after[("PUT", 2)] = garble
    server.after[("PUT", 3)] = lose_answer
    events = await upload(server, tmp_path / "state", [src])
    [ev] = done(events)
    assert stored(server, ev) == src.read_bytes()
    assert len(server.uploads) == 2
    assert any("new upload" in e.message for e in events if isinstance(e, LogMessage))


async def test_transient_errors_retry_and_the_budget_resets_on_progress(tmp_path: Path) -> None:
    server = FakeServer()

    def busy(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, json={"detail": "busy"})

    for nth in (1, 2, 4, 5, 7, 8):  # two failures before each of three chunks
        server.before[("PUT", nth)] = busy
    src = make_file(tmp_path, "a.bin", 3 * CHUNK)
    [ev] = done(await upload(server, tmp_path / "state", [src], retries=2))
    assert stored(server, ev) == src.read_bytes()


async def test_budget_spent_leaves_the_file_paused_and_resumable(tmp_path: Path) -> None:
    server = FakeServer()
    for nth in range(2, 20):
        server.before[("PUT", nth)] = lambda r: httpx.Response(502, json={"detail": "bad gw"})
    src = make_file(tmp_path, "a.bin", 3 * CHUNK)
    events = await upload(server, tmp_path / "state", [src], retries=3)
    [failed] = [e for e in events if isinstance(e, JobFailed)]
    assert failed.resumable and "gave up after 4 attempts" in failed.error
    journal = Journal(tmp_path / "state")
    [job] = journal.jobs()
    assert job.state == JobState.PAUSED and job.offset == CHUNK and job.upload_url
    # The server recovers: `resume` finishes it from the server's offset.
    server.before.clear()
    [ev] = done(await resume(server, tmp_path / "state"))
    assert ev.resumed_from == CHUNK
    assert stored(server, ev) == src.read_bytes()


async def test_retry_lines_say_how_long_the_job_has_been_failing(tmp_path: Path) -> None:
    server = FakeServer()
    now = [0.0]  # the backoff clock; each refused PUT takes 25 s of it

    def busy(request: httpx.Request) -> httpx.Response:
        now[0] += 25.0
        return httpx.Response(503, json={"detail": "busy"})

    for nth in range(2, 20):
        server.before[("PUT", nth)] = busy
    src = make_file(tmp_path, "a.bin", 3 * CHUNK)
    events: list[Event] = []
    async with manager(server, tmp_path / "state", events, retries=3) as m:
        m.backoff = Backoff(0.001, 0.002, clock=lambda: now[0])
        await m.add_paths([str(src)])
        await m.wait_idle()
    lines = [e.message for e in events if isinstance(e, LogMessage) and "retry" in e.message]
    assert [line.rsplit("; ", 1)[1].split(" in ")[0] for line in lines] == [
        "retry 1/3",
        "retry 2/3",
        "retry 3/3",
    ]
    assert "failing for" not in lines[0]
    assert lines[1].endswith(", failing for 25s") and lines[2].endswith(", failing for 50s")
    [failed] = [e for e in events if isinstance(e, JobFailed)]
    assert "gave up after 4 attempts over 1m15s: " in failed.error


async def test_lost_finalize_answer_is_confirmed_with_a_get(tmp_path: Path) -> None:
    server = FakeServer()
    server.after[("POST", 1)] = lose_answer
    src = make_file(tmp_path, "a.bin", 2 * CHUNK)
    [ev] = done(await upload(server, tmp_path / "state", [src]))
    assert stored(server, ev) == src.read_bytes()
    assert server.counts["POST"] == 1 and len(server.uploads) == 1


async def test_checksum_mismatch_restarts_once_when_the_file_is_unchanged(tmp_path: Path) -> None:
    server = FakeServer()

    def corrupt(request: httpx.Request, response: httpx.Response) -> None:
        next(iter(server.uploads.values())).data[5] ^= 0xFF  # the server stored a bad byte

    server.after[("PUT", 1)] = corrupt
    src = make_file(tmp_path, "a.bin", 2 * CHUNK)
    events = await upload(server, tmp_path / "state", [src])
    [ev] = done(events)
    assert stored(server, ev) == src.read_bytes()
    assert len(server.uploads) == 2


async def test_upload_gone_on_resume_starts_a_new_one(tmp_path: Path) -> None:
    server = FakeServer()
    for nth in range(2, 10):
        server.before[("PUT", nth)] = lambda r: httpx.Response(500, json={})
    src = make_file(tmp_path, "a.bin", 3 * CHUNK)
    await upload(server, tmp_path / "state", [src], retries=0)
    server.before.clear()
    server.uploads.clear()  # expired and cleaned up on the server
    events: list[Event] = []
    async with manager(server, tmp_path / "state", events) as m:
        m.resume_unfinished()
        await m.wait_idle()
    [ev] = done(events)
    assert ev.resumed_from == 0 and stored(server, ev) == src.read_bytes()


async def test_auth_error_stops_everything_without_failing_files(tmp_path: Path) -> None:
    server = FakeServer()
    server.before[("PUT", 3)] = lambda r: httpx.Response(401, json={"detail": "Invalid token."})
    files = [make_file(tmp_path, f"f{i}.bin", 2 * CHUNK) for i in range(4)]
    events = await upload(server, tmp_path / "state", files, concurrency=2)
    assert any(isinstance(e, FatalStop) for e in events)
    assert not [e for e in events if isinstance(e, JobFailed)]
    states = {j.state for j in Journal(tmp_path / "state").jobs()}
    assert JobState.FAILED not in states and JobState.PAUSED in states


@pytest.mark.parametrize(("size", "first"), [(2 * CHUNK, "PUT"), (CHUNK, "POST")])
async def test_server_refusal_fails_one_file_and_the_batch_goes_on(
    tmp_path: Path, size: int, first: str
) -> None:
    server = FakeServer()
    server.before[(first, 1)] = lambda r: httpx.Response(413, json={"detail": "too big"})
    files = [make_file(tmp_path, f"f{i}.bin", size) for i in range(3)]
    events = await upload(server, tmp_path / "state", files, concurrency=1)
    failed = [e for e in events if isinstance(e, JobFailed)]
    assert len(failed) == 1 and "too big" in failed[0].error and not failed[0].resumable
    assert len(done(events)) == 2


async def test_totals_count_every_state_as_the_jobs_say(tmp_path: Path) -> None:
    """The totals (one pass over the jobs each tick) agree with the jobs themselves: done,
    failed part-way, cancelled (left out of the bytes) and still queued."""
    server = FakeServer()
    server.before[("PUT", 2)] = lambda r: httpx.Response(413, json={"detail": "too big"})
    sizes = [1000, 3 * CHUNK + 5, 2000, 4000]
    files = [make_file(tmp_path, f"f{i}.bin", n) for i, n in enumerate(sizes)]
    events: list[Event] = []
    async with manager(server, tmp_path / "state", events, concurrency=1) as m:
        await m.add_paths([str(p) for p in files[:2]])
        await m.wait_idle()
        m.drain()
        await m.add_paths([str(p) for p in files[2:]])  # stay queued
        last = next(j for j in m.window(0, 10) if j.size == 2000)
        m.cancel(last.id)
        m.views.emit_totals()
        totals = [e for e in events if isinstance(e, TotalProgress)][-1]
        jobs = m.window(0, 10)  # every job, from the journal (the finished left memory)
        kept = [j for j in jobs if j.state != JobState.CANCELLED]
        assert [j.state for j in sorted(jobs, key=lambda j: j.id)] == [
            JobState.DONE,
            JobState.FAILED,
            JobState.CANCELLED,
            JobState.QUEUED,
        ]
        assert totals.files_total == 4 and totals.files_done == 1
        assert totals.bytes_total == sum(j.size for j in kept) == 1000 + 3 * CHUNK + 5 + 4000
        failed_sent = next(j.sent for j in jobs if j.state == JobState.FAILED)
        assert failed_sent == CHUNK  # its first chunk landed, the second was refused
        assert totals.bytes_done == 1000 + failed_sent
        assert totals.counts == {
            **{s.value: 0 for s in JobState},
            "done": 1,
            "failed": 1,
            "cancelled": 1,
            "queued": 1,
        }


async def test_malformed_answer_fails_the_file_and_keeps_the_journal_clean(tmp_path: Path) -> None:
    server = FakeServer()
    server.before[("PUT", 2)] = lambda r: httpx.Response(200, content=b"<html>oops")
    src = make_file(tmp_path, "a.bin", 3 * CHUNK)
    events = await upload(server, tmp_path / "state", [src])
    [failed] = [e for e in events if isinstance(e, JobFailed)]
    assert "not JSON" in failed.error
    [job] = Journal(tmp_path / "state").jobs()
    assert job.offset == CHUNK and job.upload_url and job.upload_url.startswith(ROOT)


@pytest.mark.parametrize(
    ("offset", "keep_mtime"),
    [
        (0, False),  # an ordinary in-place edit: caught by size/mtime/inode before a chunk
        (3 * CHUNK - 8, True),  # unsent bytes edited, mtime forged back: caught by xxh3
    ],
)
async def test_file_changed_during_upload_is_never_finalized(
    tmp_path: Path, offset: int, keep_mtime: bool
) -> None:
    server = FakeServer()
    src = make_file(tmp_path, "a.bin", 3 * CHUNK)
    before = src.stat()

    def modify(request: httpx.Request, response: httpx.Response) -> None:
        with open(src, "r+b") as f:  # same size, new content
            f.seek(offset)
            f.write(b"changed!")
        if keep_mtime:
            os.utime(src, ns=(before.st_atime_ns, before.st_mtime_ns))
        else:
            os.utime(src, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000))

    server.after[("PUT", 2)] = modify
    events = await upload(server, tmp_path / "state", [src])
    [failed] = [e for e in events if isinstance(e, JobFailed)]
    assert "changed during upload" in failed.error
    assert server.counts.get("POST", 0) == 0


async def test_duplicates_and_already_uploaded_are_skipped(tmp_path: Path) -> None:
    server = FakeServer()
    a = make_file(tmp_path, "a.bin", 1000)
    (tmp_path / "copy.bin").write_bytes(a.read_bytes())
    events = await upload(server, tmp_path / "state", [a, tmp_path / "copy.bin"])
    skipped = [e for e in events if isinstance(e, JobSkipped)]
    assert len(done(events)) == 1 and "duplicate of" in skipped[0].reason
    again = await upload(server, tmp_path / "state", [a])
    assert "already uploaded" in next(e for e in again if isinstance(e, JobSkipped)).reason
    forced: list[Event] = []
    async with manager(server, tmp_path / "state", forced) as m:
        await m.add_paths([str(a)], force=True)
        await m.wait_idle()
    assert len(done(forced)) == 1


async def test_a_file_named_twice_with_force_is_one_job(tmp_path: Path) -> None:
    """With --force nothing is skipped as a duplicate, yet the same path twice in one scan
    batch finds the job its first mention made (one lookup decides, not the batch's)."""
    server = FakeServer()
    a = make_file(tmp_path, "a.bin", 1000)
    events: list[Event] = []
    async with manager(server, tmp_path / "state", events) as m:
        await m.add_paths([str(a), str(a)], force=True)
        await m.wait_idle()
        assert len(m.window(0, 10)) == 1
    assert len(done(events)) == 1 and server.counts.get("POST", 0) == 1


async def test_pause_at_a_chunk_boundary_and_resume(tmp_path: Path) -> None:
    server = FakeServer()
    src = make_file(tmp_path, "a.bin", 4 * CHUNK)
    events: list[Event] = []
    async with manager(server, tmp_path / "state", events) as m:

        def pause_after_first(request: httpx.Request, response: httpx.Response) -> None:
            m.pause_all()

        server.after[("PUT", 1)] = pause_after_first
        await m.add_paths([str(src)])
        await m.wait_idle()
        [job] = m.window(0, 10)
        assert job.state == JobState.PAUSED and job.offset == CHUNK
        m.resume_all()
        await m.wait_idle()
    [ev] = done(events)
    assert stored(server, ev) == src.read_bytes() and server.put_bytes == 4 * CHUNK


async def test_drain_finishes_in_flight_and_starts_nothing_new(tmp_path: Path) -> None:
    server = FakeServer()
    files = [make_file(tmp_path, f"f{i}.bin", 2 * CHUNK) for i in range(4)]
    events: list[Event] = []
    async with manager(server, tmp_path / "state", events, concurrency=1) as m:
        server.after[("PUT", 1)] = lambda req, resp: m.drain()
        await m.add_paths([str(f) for f in files])
        await m.wait_idle()
        assert len(done(events)) == 1
        assert sorted(j.state for j in m.window(0, 10)).count(JobState.QUEUED) == 3


async def test_cancel_stops_a_job(tmp_path: Path) -> None:
    server = FakeServer()
    src = make_file(tmp_path, "a.bin", 4 * CHUNK)
    events: list[Event] = []
    async with manager(server, tmp_path / "state", events) as m:
        server.after[("PUT", 2)] = lambda req, resp: m.cancel(next(iter(m.jobs)))
        await m.add_paths([str(src)])
        await m.wait_idle()
        [job] = m.window(0, 10)
        assert job.state == JobState.CANCELLED
    assert not done(events)
    assert Journal(tmp_path / "state").jobs()[0].state == JobState.CANCELLED


# -- small files: one request each ----------------------------------------------------------


async def test_a_small_file_goes_whole_in_one_request(tmp_path: Path) -> None:
    server = FakeServer()
    src = make_file(tmp_path, "a.bin", 1000)
    [ev] = done(await upload(server, tmp_path / "state", [src]))
    assert stored(server, ev) == src.read_bytes()
    assert ev.md5 == hashlib.md5(src.read_bytes()).hexdigest()
    sent = [(method, path) for method, path, _ in server.calls if method != "GET"]
    assert sent == [("POST", "/api/chunked_upload/")]


async def test_past_the_whole_file_limit_it_goes_in_chunks(tmp_path: Path) -> None:
    from synapse_tui.engine.uploader import WHOLE_FILE_LIMIT

    server = FakeServer()
    src = make_file(tmp_path, "a.bin", WHOLE_FILE_LIMIT + 1)
    [ev] = done(await upload(server, tmp_path / "state", [src], chunk_size=4 * WHOLE_FILE_LIMIT))
    assert stored(server, ev) == src.read_bytes()
    assert server.counts["PUT"] == 1 and server.counts["POST"] == 1 and not server.whole_bytes


async def test_a_lost_answer_to_a_whole_file_finds_it_by_its_md5(tmp_path: Path) -> None:
    server = FakeServer()
    server.after[("POST", 1)] = lose_answer
    src = make_file(tmp_path, "a.bin", 1000)
    events = await upload(server, tmp_path / "state", [src])
    [ev] = done(events)
    assert stored(server, ev) == src.read_bytes()
    assert len(server.uploads) == 1 and server.counts["POST"] == 1  # adopted, not sent again
    assert any("found its upload" in e.message for e in events if isinstance(e, LogMessage))


async def test_a_lost_answer_without_listed_checksums_is_sent_again(tmp_path: Path) -> None:
    server = FakeServer()
    server.checksums = False  # as drf-chunked-upload: no way to tell which copy is ours
    server.after[("POST", 1)] = lose_answer
    src = make_file(tmp_path, "a.bin", 1000)
    events = await upload(server, tmp_path / "state", [src])
    [ev] = done(events)
    assert stored(server, ev) == src.read_bytes()
    assert len(server.uploads) == 2 and ev.upload_id in server.uploads  # one unused copy
    warnings = [e.message for e in events if isinstance(e, LogMessage) and e.level == "warning"]
    assert any("lists no checksums" in m for m in warnings)


async def test_resume_after_a_lost_whole_file_answer_adopts_it(tmp_path: Path) -> None:
    """The process gives up (or dies) right after a whole-file POST landed: `resume` finds
    that upload by name, size and MD5 instead of sending the file again."""
    server = FakeServer()
    server.after[("POST", 1)] = lose_answer
    for nth in range(1, 20):  # the listing fails too: the budget runs out, the job pauses
        server.before[("GET", nth)] = lambda r: httpx.Response(502, json={"detail": "bad gw"})
    src = make_file(tmp_path, "a.bin", 1000)
    events = await upload(server, tmp_path / "state", [src], retries=2)
    [failed] = [e for e in events if isinstance(e, JobFailed)]
    assert failed.resumable
    [job] = Journal(tmp_path / "state").jobs()
    assert job.creating_since is not None and job.upload_id is None
    server.before.clear()
    [ev] = done(await resume(server, tmp_path / "state"))
    assert stored(server, ev) == src.read_bytes()
    assert server.counts["POST"] == 1 and len(server.uploads) == 1


async def test_small_files_are_noted_creating_ahead_and_still_found_after_a_loss(
    tmp_path: Path,
) -> None:
    """The first small file's "creating" note covers the queued small files after it, in
    one write: when its POST arrives, every row has its note. A later file, noted that
    way and lost mid-request, is still found on the server by resume, not sent again."""
    server = FakeServer()
    state = tmp_path / "state"
    srcs = [make_file(tmp_path, f"{i}.bin", 1000 + i) for i in range(5)]
    noted: list[list[float | None]] = []

    def look(request: httpx.Request) -> None:
        with sqlite3.connect(f"file:{state / Journal.FILENAME}?mode=ro", uri=True) as db:
            noted.append([row[0] for row in db.execute("SELECT creating_since FROM jobs")])

    server.before[("POST", 1)] = look
    server.after[("POST", 3)] = lose_answer
    for nth in range(1, 20):  # the listing fails too: the budget runs out, the job pauses
        server.before[("GET", nth)] = lambda r: httpx.Response(502, json={"detail": "bad gw"})
    events = await upload(server, state, srcs, retries=2, concurrency=1)
    assert len(noted) == 1 and len(noted[0]) == 5 and None not in noted[0]
    assert len(done(events)) == 4
    [lost] = [j for j in Journal(state).jobs() if j.state != JobState.DONE]
    assert lost.path == bytes(srcs[2]) and lost.creating_since is not None
    server.before.clear()
    [ev] = done(await resume(server, state))
    assert stored(server, ev) == srcs[2].read_bytes()
    assert server.counts["POST"] == 5 and len(server.uploads) == 5


async def test_creating_notes_ahead_skip_jobs_another_process_drives(tmp_path: Path) -> None:
    server = FakeServer()
    state = tmp_path / "state"
    srcs = [make_file(tmp_path, f"{i}.bin", 100) for i in range(4)]
    events: list[Event] = []
    async with manager(server, state, events) as m:
        m.drain()  # queued, none started
        await m.add_paths([str(p) for p in srcs])
        first, second, third, fourth = m.window(0, 10)
        m.queue.elsewhere.add(third.id)
        first.creating_since = 1.0
        m.note_creating(first)
        assert second.creating_noted and fourth.creating_noted and not third.creating_noted
        noted = {j.id: j.creating_since for j in m.journal.jobs()}
        assert noted == {first.id: 1.0, second.id: 1.0, third.id: None, fourth.id: 1.0}


async def test_an_upload_of_the_same_bytes_is_not_mistaken_unless_unclaimed(
    tmp_path: Path,
) -> None:
    """Another job's upload with the same name, size and MD5 is never adopted as this one's."""
    server = FakeServer()
    src = make_file(tmp_path, "a.bin", 1000)
    [first] = done(await upload(server, tmp_path / "state", [src]))
    server.after[("POST", 2)] = lose_answer
    forced: list[Event] = []
    async with manager(server, tmp_path / "state", forced) as m:
        await m.add_paths([str(src)], force=True)
        await m.wait_idle()
    [second] = done(forced)
    assert second.upload_id != first.upload_id and second.upload_id in server.uploads
    assert server.counts["POST"] == 2 and len(server.uploads) == 2


async def test_a_small_file_changed_since_the_scan_is_never_sent(tmp_path: Path) -> None:
    server = FakeServer()
    first = make_file(tmp_path, "a.bin", 1000)
    second = make_file(tmp_path, "b.bin", 1000)
    before = second.stat()

    def modify(request: httpx.Request, response: httpx.Response) -> None:
        with open(second, "r+b") as f:  # same size, new content, mtime forged back
            f.write(b"changed!")
        os.utime(second, ns=(before.st_atime_ns, before.st_mtime_ns))

    server.after[("POST", 1)] = modify
    events = await upload(server, tmp_path / "state", [first, second], concurrency=1)
    [ok] = done(events)
    [failed] = [e for e in events if isinstance(e, JobFailed)]
    assert ok.path == str(first) and failed.path == str(second)
    assert "changed since the pre-scan" in failed.error
    assert server.counts["POST"] == 1


@pytest.mark.parametrize("refusals", [1, 2])
async def test_a_whole_file_refused_for_its_checksum_is_sent_once_more(
    tmp_path: Path, refusals: int
) -> None:
    server = FakeServer()
    for nth in range(1, refusals + 1):
        server.before[("POST", nth)] = lambda r: httpx.Response(
            400, json={"detail": "checksum does not match"}
        )
    src = make_file(tmp_path, "a.bin", 1000)
    events = await upload(server, tmp_path / "state", [src])
    assert server.counts["POST"] == 2  # never a third time
    clean = FakeServer()
    await upload(clean, tmp_path / "clean", [src])
    assert server.counts.get("GET", 0) == clean.counts.get("GET", 0)  # a refusal needs no search
    if refusals == 1:
        [ev] = done(events)
        assert stored(server, ev) == src.read_bytes() and len(server.uploads) == 1
    else:
        [failed] = [e for e in events if isinstance(e, JobFailed)]
        assert "checksum" in failed.error and not server.uploads
