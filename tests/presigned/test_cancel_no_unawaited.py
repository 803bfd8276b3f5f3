"""Cancelling a presigned upload asks whether the job has a grant without leaving a
coroutine unawaited (`known` is async: called bare, its result was never None, so every
cancelled job counted as one with a grant, and Python warned)."""

from __future__ import annotations

import gc
import warnings
from pathlib import Path

from synapse_tui.engine.events import Event
from tests.faults.helpers import make_file
from tests.harness.embedded import EmbeddedServer
from tests.harness.moto import MotoServer
from tests.presigned.conftest import PART
from tests.presigned.test_cancel_later_session import SIZE, cancel_part_way, engine


async def test_cancelling_a_presigned_upload_leaves_no_coroutine_unawaited(
    s3_server: EmbeddedServer, moto: MotoServer, tmp_path: Path
) -> None:
    big = make_file(tmp_path / "big.bin", SIZE, seed=23)
    state = tmp_path / "state"
    events: list[Event] = []
    m = engine(s3_server, state, events, bwlimit=4 * PART)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            async with m:
                await cancel_part_way(m, big, state)
                assert len(m.intake.cancelled) == 1  # it has a grant: queued again, it resumes
        finally:
            m.journal.close()
        gc.collect()
    unawaited = [str(w.message) for w in caught if "never awaited" in str(w.message)]
    assert unawaited == []
