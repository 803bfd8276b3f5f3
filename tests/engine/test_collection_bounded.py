"""A collection upload holds a bounded number of jobs in memory, whatever its size: the jobs
waiting for their data unit are journal rows, paged by the units step; a twin finds its
original by content in the journal once the original has left memory."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from synapse_tui.engine import collections
from synapse_tui.engine.collections import Registrar
from synapse_tui.engine.errors import FatalError
from synapse_tui.engine.events import Event, JobFailed, JobSkipped, JobState, LogMessage
from synapse_tui.engine.journal import Journal
from synapse_tui.engine.protocol import Credentials, ProtocolClient
from synapse_tui.engine.scheduler import EngineOptions, UploadManager
from tests.engine.test_collection_twins import upload_count
from tests.engine.test_collections import TOKEN, data_file_count, plan_for, server
from tests.engine.test_lost_units import lose

__all__ = ["server"]  # the fixture, imported for these tests

LIMIT = 8  # the look-ahead, lowered
PER_REQUEST = 5  # groups per POST data_units/ (a page of the units step), lowered
CONCURRENCY = 2


def all_units(url: str) -> list[dict[str, Any]]:
    answer = httpx.get(
        f"{url}/data_units/",
        params={"data_collection": "1", "page_size": "1000"},
        headers={"Synapse-Access-Token": f"Token {TOKEN}"},
    )
    data = answer.json()
    units = data["results"] if isinstance(data, dict) else data
    assert not (isinstance(data, dict) and data.get("next")), "more than one page"
    return list(units)


def stems(root: Path, n: int, twins: int) -> dict[str, dict[str, bytes]]:
    """`n` stems, each a .jpg and a .json of a few bytes; the first `twins` images repeat
    the content of the image `n // 2` stems later (twins: equal bytes, another unit)."""
    root.mkdir()
    images = [b"image %04d " % i * (1 + i % 3) for i in range(n)]
    for i in range(twins):
        images[n // 2 + i] = images[i]
    files: dict[str, dict[str, bytes]] = {}
    for i in range(n):
        stem = f"s{i:04}"
        label = json.dumps({"stem": stem, "n": i}).encode()
        (root / f"{stem}.jpg").write_bytes(images[i])
        (root / f"{stem}.json").write_bytes(label)
        files[stem] = {"image": images[i], "meta": label}
    return files


def check_units(url: str, files: dict[str, dict[str, bytes]]) -> None:
    """One unit per stem on the server, with that stem's files (by checksum and name)."""
    units = all_units(url)
    by_stem = Counter(u["meta"]["origin_file_stem"] for u in units)
    assert by_stem == Counter(list(files)), "a unit missing or made twice"
    for unit in units:
        stem = unit["meta"]["origin_file_stem"]
        wanted = {
            spec: {
                "checksum": hashlib.md5(data).hexdigest(),
                "path": f"{stem}.{'jpg' if spec == 'image' else 'json'}",
            }
            for spec, data in files[stem].items()
        }
        got = {s: {"checksum": f["checksum"], "path": f["path"]} for s, f in unit["files"].items()}
        assert got == wanted, stem


def lowered(
    url: str, state: Path, events: list[Event], concurrency: int = CONCURRENCY
) -> UploadManager:
    """A manager as test_collections makes one, with a look-ahead of LIMIT jobs."""
    client = ProtocolClient(url, Credentials(access_token=TOKEN))
    options = EngineOptions(
        host=url, chunk_size=64 * 1024, tick=0.05, backoff_base=0.01, concurrency=concurrency
    )
    m = UploadManager(client, Journal(state), options, [events.append])
    m.queue.limit = LIMIT
    return m


def gate_units(monkeypatch: pytest.MonkeyPatch) -> asyncio.Event:
    """Hold the units step back until the event returned is set (the jobs then wait for
    their data unit as rows, out of memory)."""
    gate = asyncio.Event()
    real = Registrar.units

    async def gated(self: Registrar) -> None:
        await gate.wait()
        await real(self)

    monkeypatch.setattr(Registrar, "units", gated)
    return gate


async def all_waiting_for_units(m: UploadManager, files: int) -> None:
    """Until `files` jobs wait for their data unit and none uploads (60 s at most)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while m.counters.count[JobState.REGISTERING] < files or m.active():
        assert loop.time() < deadline, "the uploads did not all finish"
        await asyncio.sleep(0.02)


async def stem_plan(url: str) -> Any:
    """The plan of these tests: a unit per stem, images and their JSON labels."""
    return await plan_for(url, group_by_stem=True, spec_map={"jpg": "image", "json": "meta"})


def watch(m: UploadManager, peak: list[int]) -> Callable[[Event], None]:
    def listener(_: Event) -> None:
        peak[0] = max(peak[0], len(m.jobs))

    return listener


async def test_a_collection_run_holds_a_bounded_number_of_jobs(
    server: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, root = server
    monkeypatch.setattr(collections, "UNITS_PER_REQUEST", PER_REQUEST)
    n = 60  # 120 files: 15 times the look-ahead
    files = stems(tmp_path / "data", n, twins=6)
    plan = await stem_plan(url)
    events: list[Event] = []
    peak = [0]
    async with lowered(url, tmp_path / "st", events) as m:
        m.subscribe(watch(m, peak))
        await m.add_paths([str(tmp_path / "data")], plan=plan)
        await m.wait_idle()
        held_at_end = len(m.jobs)
    assert not [e for e in events if isinstance(e, JobFailed | JobSkipped)]
    # The look-ahead, the jobs running, and one page of the units step (its groups' files).
    bound = LIMIT + CONCURRENCY + 2 * PER_REQUEST
    assert peak[0] <= bound, f"{peak[0]} jobs held at once (bound {bound}, files {2 * n})"
    assert held_at_end == 0
    check_units(url, files)
    assert upload_count(root) == 2 * n - 6  # each twin took its original's upload
    assert data_file_count(root) == 2 * n - 6
    jobs = Journal(tmp_path / "st").jobs()
    assert len(jobs) == 2 * n and {j.state for j in jobs} == {JobState.DONE}


def lose_all(state: Path) -> None:
    """As a crash after every unit's request was sent and none recorded would leave them."""
    lose(state, None)


async def test_units_lost_to_a_crash_are_found_page_by_page_and_made_once(
    server: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, root = server
    monkeypatch.setattr(collections, "UNITS_PER_REQUEST", PER_REQUEST)
    n = 24
    files = stems(tmp_path / "data", n, twins=2)
    plan = await stem_plan(url)
    state = tmp_path / "st"
    async with lowered(url, state, []) as m:
        await m.add_paths([str(tmp_path / "data")], plan=plan)
        await m.wait_idle()
    lose_all(state)
    # Some of the requests never reached the server: those units are made again, once.
    db = sqlite3.connect(next(root.glob("*.sqlite3")))
    gone = [r[0] for r in db.execute("SELECT id FROM data_units ORDER BY id DESC LIMIT 7")]
    db.execute(f"DELETE FROM data_units WHERE id IN ({','.join('?' * len(gone))})", gone)
    db.commit()
    db.close()
    events: list[Event] = []
    peak = [0]
    async with lowered(url, state, events) as m:
        m.subscribe(watch(m, peak))
        assert m.resume_unfinished() == 2 * n
        await m.wait_idle()
    assert not [e for e in events if isinstance(e, JobFailed)]
    assert peak[0] <= LIMIT + CONCURRENCY + 2 * PER_REQUEST
    check_units(url, files)
    recorded = Counter(j.steps.unit_id for j in Journal(state).jobs())
    assert recorded == Counter({u["id"]: 2 for u in all_units(url)})


@pytest.mark.parametrize("remembered", [True, False], ids=["remembered", "journal"])
async def test_a_twin_takes_the_data_file_of_an_original_out_of_memory(
    server: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, remembered: bool
) -> None:
    url, root = server
    if not remembered:  # the original is found by the journal's index alone
        monkeypatch.setattr("synapse_tui.engine.twins.KNOWN_MAX", 0)
    data = tmp_path / "data"
    data.mkdir()
    same = b"the same picture, twice"
    (data / "a.jpg").write_bytes(same)
    for i in range(3 * LIMIT):  # the original leaves memory long before the twin starts
        (data / f"m{i:03}.jpg").write_bytes(b"other %d" % i)
    (data / "z.jpg").write_bytes(same)
    plan = await plan_for(url, spec="image")
    events: list[Event] = []
    taken: list[bool] = []
    async with lowered(url, tmp_path / "st", events, concurrency=1) as m:  # in order

        def on(event: Event) -> None:
            if isinstance(event, LogMessage) and "same content as" in event.message:
                original = next(
                    j for j in Journal(tmp_path / "st").jobs() if j.path.endswith(b"a.jpg")
                )
                taken.append(original.id in m.jobs)

        m.subscribe(on)
        await m.add_paths([str(data)], plan=plan)
        await m.wait_idle()
    assert not [e for e in events if isinstance(e, JobFailed | JobSkipped)]
    assert taken == [False]  # taken once, from an original no longer held
    assert upload_count(root) == 3 * LIMIT + 1  # the twin's bytes did not go up again
    units = all_units(url)
    checksums = Counter(u["files"]["image"]["checksum"] for u in units)
    assert len(units) == 3 * LIMIT + 2 and checksums[hashlib.md5(same).hexdigest()] == 2


async def test_a_job_waiting_for_its_unit_out_of_memory_is_paused_or_cancelled(
    server: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _ = server
    monkeypatch.setattr(collections, "UNITS_PER_REQUEST", PER_REQUEST)
    gate = gate_units(monkeypatch)
    n = 20
    files = stems(tmp_path / "data", n, twins=0)
    plan = await stem_plan(url)
    events: list[Event] = []
    async with lowered(url, tmp_path / "st", events) as m:
        await m.add_paths([str(tmp_path / "data")], plan=plan)
        await all_waiting_for_units(m, 2 * n)
        await m.journal.settled()
        rows = {r.path.rsplit(b"/", 1)[-1].decode(): r.id for r in m.session.window(0, 100)}
        paused = [rows["s0003.jpg"], rows["s0003.json"]]
        cancelled = [rows["s0004.jpg"], rows["s0004.json"]]
        assert not set(paused + cancelled) & set(m.jobs)  # rows only
        for job_id in paused:
            m.pause(job_id)
        for job_id in cancelled:
            m.cancel(job_id)
        gate.set()
        await m.wait_idle()
        assert len(all_units(url)) == n - 2
        assert {m.get(i).state for i in paused} == {JobState.PAUSED}  # type: ignore[union-attr]
        assert {m.get(i).state for i in cancelled} == {JobState.CANCELLED}  # type: ignore[union-attr]
        m.resume_all()
        await m.wait_idle()
    del files["s0004"]
    check_units(url, files)


@pytest.mark.parametrize("how", ["fatal", "close"])
async def test_jobs_waiting_for_their_unit_out_of_memory_are_paused_by_a_stop(
    server: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """A fatal stop and a closing manager pause the jobs waiting for their unit, as they
    did when those were held in memory: rows now, paused a page at a time."""
    url, _ = server
    gate = asyncio.Event()

    async def held_back(self: Registrar) -> None:
        await gate.wait()
        raise FatalError("the backend is gone for good")

    monkeypatch.setattr(Registrar, "units", held_back)
    n = 12
    stems(tmp_path / "data", n, twins=0)
    plan = await stem_plan(url)
    state = tmp_path / "st"
    async with lowered(url, state, []) as m:
        await m.add_paths([str(tmp_path / "data")], plan=plan)
        await all_waiting_for_units(m, 2 * n)
        assert len(m.jobs) <= LIMIT  # the jobs waiting are rows
        if how == "fatal":
            gate.set()
            await m.wait_idle()
            assert m.stopped is not None
    message = "stopped: the backend is gone for good" if how == "fatal" else "interrupted"
    jobs = Journal(state).jobs()
    assert len(jobs) == 2 * n
    assert {(j.state, j.last_error) for j in jobs} == {(JobState.PAUSED, message)}
