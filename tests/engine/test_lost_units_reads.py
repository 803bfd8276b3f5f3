"""Whether the units the server lists are another group's is read once a page, not once per
lost group and unit. Many groups of equal files under an equal stem (a blank mask and the
same label in each folder) make units that all look alike: a lost group passes every one
recorded before it reaches its own, and a read each (a scan of every job of that content)
was lost groups x recorded units x jobs of that content on the loop (~35 s of CPU for a
page of 100 lost groups past 1,000 recorded units)."""

from __future__ import annotations

from pathlib import Path

from synapse_tui.engine.events import Event, JobState
from tests.engine.test_collections import make_manager, plan_for, run, server, units_on
from tests.engine.test_lost_unit_not_anothers import lose_folder, recorded

__all__ = ["server"]  # the fixture, imported for these tests

FOLDERS = 12


async def test_a_page_of_lost_units_is_one_read_per_content(
    server: tuple[str, Path], tmp_path: Path
) -> None:
    url, _ = server
    data = tmp_path / "data"
    names = [f"f{i:02}" for i in range(FOLDERS)]
    for name in names:
        (data / name).mkdir(parents=True)
        (data / name / "img.jpg").write_bytes(b"the same blank mask" * 100)
        (data / name / "img.json").write_bytes(b'{"label": "none"}')
    plan = await plan_for(url, group_by_stem=True, spec_map={"jpg": "image", "json": "meta"})
    state = tmp_path / "st"
    await run(url, state, [data], plan)
    first = recorded(state)
    assert len(set(first.values())) == FOLDERS
    lost = names[FOLDERS // 2 :]  # the later half: each passes the earlier half's units
    for name in lost:
        lose_folder(state, name.encode())

    events: list[Event] = []
    statements: list[str] = []
    async with make_manager(url, state, events) as m:
        m.journal._db.set_trace_callback(statements.append)
        assert m.resume_unfinished() == 2 * len(lost)
        await m.wait_idle()
        assert m.counters.count[JobState.DONE] == 2 * len(lost)
    reads = [s for s in statements if "$.unit_id" in s]
    assert len(reads) <= 1, f"{len(reads)} reads for one page of units"
    assert len(units_on(url)) == FOLDERS  # every lost one found, none made again
    assert recorded(state) == first
