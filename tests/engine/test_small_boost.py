"""Small files go several to a concurrency slot; a large file takes a whole one."""

from __future__ import annotations

from pathlib import Path

from synapse_tui.config import Settings
from synapse_tui.engine.events import Event, JobState, JobStateChanged
from synapse_tui.engine.factory import engine_options
from synapse_tui.engine.limits import Gate
from synapse_tui.engine.scheduler import SMALL_BOOST
from tests.engine.fakeserver import FakeServer
from tests.engine.test_uploader import CHUNK, done, make_file, manager


async def in_flight_at_first_start(tmp_path: Path, sizes: list[int], **options: object) -> int:
    """How many jobs the dispatcher started in its first round (before any of them ran)."""
    paths = [make_file(tmp_path, f"f{i}.bin", n) for i, n in enumerate(sizes)]
    events: list[Event] = []
    seen: list[int] = []

    def first_upload(event: Event) -> None:
        if isinstance(event, JobStateChanged) and event.state == JobState.UPLOADING and not seen:
            seen.append(len(m.active()))

    async with manager(FakeServer(), tmp_path / "state", events, **options) as m:
        m.subscribe(first_upload)
        m.drain()
        await m.add_paths([str(p) for p in paths])
        m.undrain()
        await m.wait_idle()
    assert len(done(events)) == len(sizes)  # and all of them arrived
    return seen[0]


async def test_small_files_take_a_fraction_of_a_slot(tmp_path: Path) -> None:
    started = await in_flight_at_first_start(tmp_path, [100] * 12, concurrency=2, small_boost=4)
    assert started == 8  # 2 slots x 4 small files


async def test_large_files_take_a_whole_slot(tmp_path: Path) -> None:
    sizes = [3 * CHUNK] * 4
    started = await in_flight_at_first_start(tmp_path, sizes, concurrency=2, small_boost=4)
    assert started == 2


async def test_without_boost_every_file_takes_a_slot(tmp_path: Path) -> None:
    assert await in_flight_at_first_start(tmp_path, [100] * 6, concurrency=2) == 2


def test_the_front_ends_use_the_boost() -> None:
    assert engine_options(Settings(host="http://h", concurrency=2)).small_boost == SMALL_BOOST > 1


def test_the_gate_counts_weights() -> None:
    gate = Gate(2, unit=4)  # 2 slots of 4
    assert gate.capacity == 2
    assert gate.take(4) and gate.take(1) and gate.take(3)
    assert not gate.free(1) and not gate.take(4)
