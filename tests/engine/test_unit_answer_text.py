"""A data unit answer's id and collection are server text: escaped, never a crash."""

from __future__ import annotations

from pathlib import Path

from synapse_tui.engine.collections import Registrar
from synapse_tui.engine.events import Event, JobState, UnitRegistered
from synapse_tui.engine.hashing import Identity
from synapse_tui.engine.job import job_from_record
from synapse_tui.engine.journal import Journal
from synapse_tui.engine.options import EngineOptions
from synapse_tui.engine.protocol import Credentials, ProtocolClient
from synapse_tui.engine.scheduler import UploadManager
from synapse_tui.engine.steps import JobSteps, UnitPlan


def test_a_hostile_unit_answer_is_escaped_and_does_not_crash(tmp_path: Path) -> None:
    events: list[Event] = []
    host = "http://127.0.0.1:9/api"  # never asked: _record only journals and tells
    journal = Journal(tmp_path)
    m = UploadManager(
        ProtocolClient(host, Credentials(access_token="t")),
        journal,
        EngineOptions(host=host),
        [events.append],
    )
    steps = JobSteps(UnitPlan(3, "image", "/d/a"), uploaded=True, data_file_id=1, checksum="c")
    rec = journal.add_job(b"/d/a.jpg", Identity(1, 2, 3, 4), "fp", host, 5, 0, steps)
    job = job_from_record(rec)
    m.transition(job, JobState.REGISTERING)
    Registrar(m)._record([job], {"id": "\x1b]0;owned\x07", "data_collection": "not a number"})
    (event,) = [e for e in events if isinstance(e, UnitRegistered)]
    assert "\x1b" not in str(event.unit_id) and "\x1b" not in str(job.steps.unit_id)
    assert event.collection == 3 and job.state == JobState.DONE
    stored = journal.get(job.id)
    assert stored.state == JobState.DONE and stored.steps.unit_id == job.steps.unit_id
    journal.close()
