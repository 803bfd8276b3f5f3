"""A job's collection workflow, typed: its plan, then each step's outcome, journaled as JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# The journal's `extra` column holds JobSteps as one flat JSON object, under the keys the
# untyped dict of earlier versions used: their rows load, and they can read ours.
_PLAN_KEYS = ("collection", "spec", "unit_key", "meta")
_FLAGS = ("twin", "uploaded", "data_file_requested", "unit_requested")
_IDS = ("data_file_id", "unit_id")
_TEXTS = ("checksum", "file_key")
_KNOWN = frozenset(_PLAN_KEYS + _FLAGS + _IDS + _TEXTS)

Id = int | str  # a server's id for a data file or unit, as its JSON gave it


@dataclass
class UnitPlan:
    """Where a file goes: its collection, the spec it fills there, the key of the data
    unit it joins (files sharing it are one unit) and that unit's meta."""

    collection: int
    spec: str
    unit_key: str
    meta: dict[str, str] = field(default_factory=dict)


@dataclass
class JobSteps:
    """What a job registers and how far it got: its plan (None: a plain upload), what its
    upload left for the data file step, and the data unit step's outcome."""

    plan: UnitPlan | None = None
    twin: bool = False  # another file of this run has its content: it borrows that data file
    uploaded: bool = False  # complete on the server (or before): the data file step is next
    data_file_requested: bool = False  # data_files/ was sent (answers the same record again)
    data_file_id: Id | None = None
    checksum: str | None = None  # the data file's, named in the data unit
    file_key: str | None = None  # a presigned upload's key in the storage
    unit_requested: bool = False  # data_units/ was sent, its answer maybe lost: look first
    unit_id: Id | None = None
    # Keys this version does not know (a newer one wrote them): written back as they were.
    unknown: dict[str, Any] = field(default_factory=dict)

    @property
    def collection(self) -> int | None:
        return self.plan.collection if self.plan is not None else None

    @property
    def spec(self) -> str | None:
        return self.plan.spec if self.plan is not None else None

    def replanned(self, new: JobSteps) -> JobSteps:
        """`new` (a plan given again) with what this job's upload left (its data file)."""
        return JobSteps(
            plan=new.plan,
            twin=new.twin,
            uploaded=self.uploaded,
            data_file_requested=self.data_file_requested,
            data_file_id=self.data_file_id,
            checksum=self.checksum,
            file_key=self.file_key,
        )

    def to_json(self) -> dict[str, Any]:
        """The journal's form: only what is set (nothing set: {}, journaled as NULL)."""
        out: dict[str, Any] = dict(self.unknown)
        if self.plan is not None:
            plan = self.plan
            out.update(
                collection=plan.collection, spec=plan.spec, unit_key=plan.unit_key, meta=plan.meta
            )
        for name in _FLAGS:
            if getattr(self, name):
                out[name] = True
        for name in _IDS + _TEXTS:
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out

    @classmethod
    def from_json(cls, data: object) -> JobSteps:
        """From the journal's form, this version's or an earlier one's; a value of the wrong
        kind reads as unset (the step is done again, or looked up, never skipped)."""
        if not isinstance(data, dict):
            return cls()
        steps = cls(unknown={k: v for k, v in data.items() if k not in _KNOWN})
        collection = data.get("collection")
        if isinstance(collection, int) and not isinstance(collection, bool):
            meta = data.get("meta")
            steps.plan = UnitPlan(
                collection,
                str(data.get("spec") or ""),
                str(data.get("unit_key") or ""),
                {str(k): str(v) for k, v in meta.items()} if isinstance(meta, dict) else {},
            )
        for name in _FLAGS:
            setattr(steps, name, bool(data.get(name)))
        for name in _IDS:
            setattr(steps, name, as_id(data.get(name)))
        for name in _TEXTS:
            value = data.get(name)
            setattr(steps, name, str(value) if value is not None else None)
        return steps


def as_id(value: object) -> Id | None:
    """A server's id as the journal keeps it: a number or text (None: there is none)."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return value if isinstance(value, str) else str(value)
