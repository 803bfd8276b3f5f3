"""A cancelled job that one scan's batch is queueing again (its journal write not made
yet) is not made a second job by another scan of the same file meanwhile (two `upload`
commands to the engine, a folder queued twice): the file uploads once."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from synapse_tui.engine.events import Event, JobState, JobStateChanged
from synapse_tui.engine.journal import Journal
from tests.engine.revival_rig import big_file, manager
from tests.engine.test_cancel_replan import cancelled_mid_upload, until
from tests.harness.embedded import EmbeddedServer


async def test_another_scan_during_a_revival_makes_no_second_job(
    embedded_server: EmbeddedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = big_file(tmp_path), tmp_path / "b.bin"
    engine, events, state = manager(embedded_server, tmp_path)
    async with engine as m:
        job = await cancelled_mid_upload(m, a)
        await m.journal.settled()
        m.set_bwlimit(None)
        b.write_bytes(os.urandom(1 << 10))
        intake, journal = m.intake, m.journal
        accept, caught_up, settled = intake.accept, journal.caught_up, journal.settled
        armed, ran = [False], [False]

        def accept_then_arm(item: Any, *args: Any) -> None:
            accept(item, *args)
            if item.path == os.fsencode(a) and not ran[0]:
                armed[0] = True  # the first scan took a.bin's cancelled job: b.bin next

        def done(e: Event) -> bool:
            return isinstance(e, JobStateChanged) and e.state == JobState.DONE

        def not_caught_up() -> bool:  # a write is pending (an upload's progress, say) ...
            return False if armed[0] and not ran[0] else caught_up()

        async def other_scan_first() -> None:  # ... and the loop runs another scan meanwhile
            if armed[0] and not ran[0]:
                ran[0] = True
                await m.add_paths([str(a)])
                await until(lambda: any(done(e) for e in events), "the upload it queued")
            await settled()

        monkeypatch.setattr(intake, "accept", accept_then_arm)
        monkeypatch.setattr(journal, "caught_up", not_caught_up)
        monkeypatch.setattr(journal, "settled", other_scan_first)
        await m.add_paths([str(a), str(b)])
        await m.wait_idle()
    assert ran == [True]  # the race was run: the second scan came between
    journal = Journal(state)
    try:
        rows = journal.jobs()
    finally:
        journal.close()
    of_a = [(r.id, r.state) for r in rows if r.path == os.fsencode(a)]
    # Resumed once, not uploaded again anew; its row done, not written back to queued.
    assert of_a == [(job.id, JobState.DONE)]
