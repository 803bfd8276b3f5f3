"""A cancelled presigned job pruned while the engine runs: the next file gets a new id, not
the pruned job's (SQLite alone gives the highest again), and uploads. With the reused id it
stayed queued for ever (the engine's session had that id already), or took the other
file's grant (key, multipart upload and parts) kept in memory."""

from __future__ import annotations

from pathlib import Path

from synapse_tui.engine.events import Event, JobState, LogMessage
from synapse_tui.engine.journal import FINISHED
from tests.faults.helpers import make_file
from tests.harness.embedded import EmbeddedServer
from tests.harness.moto import MotoServer
from tests.presigned.conftest import PART
from tests.presigned.test_cancel_later_session import (
    PARTS,
    SIZE,
    cancel_part_way,
    count_puts,
    engine,
)
from tests.presigned.test_client import stored_keys


async def test_a_job_given_a_pruned_jobs_id_starts_its_own_upload(
    s3_server: EmbeddedServer, moto: MotoServer, tmp_path: Path
) -> None:
    first = make_file(tmp_path / "first.bin", SIZE, seed=31)
    other = make_file(tmp_path / "other.bin", SIZE, seed=32)
    state = tmp_path / "state"
    events: list[Event] = []
    puts: list[int] = []
    m = engine(s3_server, state, events, bwlimit=4 * PART)
    try:
        async with m:
            stored = await cancel_part_way(m, first, state)
            (old,) = [r.id for r in m.journal.jobs() if r.state == JobState.CANCELLED]
            pruned, _ = await m.journal.prune_async(FINISHED)
            assert pruned == 1
            count_puts(m, puts)
            m.set_bwlimit(None)
            await m.add_paths([str(other)])
            await m.wait_idle()
            (job,) = m.journal.jobs()
    finally:
        m.journal.close()
    assert 2 <= stored < PARTS
    assert job.id != old  # not the pruned job's id (SQLite alone gives it again)
    assert job.state == JobState.DONE, [e for e in events if isinstance(e, LogMessage)][-8:]
    warnings = [e.message for e in events if isinstance(e, LogMessage) and e.level == "warning"]
    assert not any("starting the file again" in w for w in warnings), warnings
    assert len(puts) == PARTS  # every part of its own, none taken from the other file
    (key,) = stored_keys(s3_server)
    assert moto.object_bytes(key) == other.read_bytes()
