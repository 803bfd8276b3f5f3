"""A data unit answer's id and collection are server text: escaped, never a crash."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from synapse_tui.engine.collections import Registrar
from synapse_tui.engine.events import JobState, UnitRegistered
from synapse_tui.engine.steps import JobSteps, UnitPlan


class Manager:
    """What Registrar._record uses of an UploadManager, recording what it is given."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.journal = SimpleNamespace(update=lambda job_id, **values: None)

    def subscribe(self, listener: Any) -> None:
        pass

    def set_state(self, job: Any, state: JobState, message: str = "") -> None:
        job.state = state

    def emit(self, event: Any) -> None:
        self.events.append(event)


def test_a_hostile_unit_answer_is_escaped_and_does_not_crash() -> None:
    m = Manager()
    job = SimpleNamespace(
        id=1, steps=JobSteps(UnitPlan(3, "image", "a")), display="a.jpg", state=None
    )
    Registrar(m)._record([job], {"id": "\x1b]0;owned\x07", "data_collection": "not a number"})
    (event,) = [e for e in m.events if isinstance(e, UnitRegistered)]
    assert "\x1b" not in str(event.unit_id) and "\x1b" not in str(job.steps.unit_id)
    assert event.collection == 3 and job.state == JobState.DONE
