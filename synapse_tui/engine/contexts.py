"""What a file's upload and the registrar may use of the manager that runs them, typed."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from synapse_tui.engine.events import Event, JobState, Listener
from synapse_tui.engine.health import BackendHealth
from synapse_tui.engine.job import Job
from synapse_tui.engine.journal import JobRecord, LedgerEntry
from synapse_tui.engine.limits import Backoff, Bandwidth, Gate
from synapse_tui.engine.options import EngineOptions
from synapse_tui.engine.protocol import ProtocolClient, UploadInfo

# UploadManager satisfies both contexts (mypy checks it where it passes itself). Neither a
# file's upload nor the registrar sees the queue, the other jobs' controls or the
# dispatcher: their whole dependency on the manager is read here.


class UploadJournal(Protocol):
    """The journal as a file's upload uses it: its own job's row, and one lookup."""

    def update(self, job_id: int, **values: Any) -> None: ...

    def add_error(self, job_id: int, message: str) -> None: ...

    def known_upload_ids(self, upload_ids: list[str]) -> set[str]: ...

    async def settled(self) -> None: ...


class UploadContext(Protocol):
    """What FileUpload and PresignedUpload need from the manager."""

    @property
    def client(self) -> ProtocolClient: ...

    @property
    def journal(self) -> UploadJournal: ...

    @property
    def options(self) -> EngineOptions: ...

    # The limits every upload of the manager shares.
    @property
    def backoff(self) -> Backoff: ...

    @property
    def bandwidth(self) -> Bandwidth: ...

    @property
    def gate(self) -> Gate: ...  # a presigned multipart upload takes extra slots

    @property
    def health(self) -> BackendHealth: ...

    def set_state(
        self, job: Job, state: JobState, message: str = "", *, persist: bool = True
    ) -> None: ...

    def count_bytes(self, job: Job, n: int) -> None: ...

    def note_creating(self, job: Job) -> None:
        """Journal that a whole-file POST may create an upload (with the next small files)."""

    def finish(self, job: Job, md5: str, info: UploadInfo) -> None:
        """The upload is complete on the server: journal it, and DONE or REGISTERING."""

    def log(self, level: str, message: str, job_id: int | None = None) -> None: ...

    def emit(self, event: Event) -> None: ...

    def kick(self) -> None:
        """A slot was given back or taken: the dispatcher looks again."""


class RegistrarJournal(Protocol):
    """The journal as the registrar uses it: its jobs' rows, and the ledger's lookups."""

    def update(self, job_id: int, **values: Any) -> None: ...

    def uploaded(self, host: str, fingerprint: str, size: int) -> LedgerEntry | None: ...

    def data_file_of(self, host: str, fingerprint: str, size: int) -> tuple[Any, str] | None: ...

    def units_recorded(
        self, host: str, fingerprint: str, size: int, unit_ids: Sequence[Any]
    ) -> dict[Any, set[int]]: ...

    async def settled(self) -> None: ...

    async def room(self) -> None: ...


class RegistrarSession(Protocol):
    """This manager's rows as the registrar reads them (engine/session.py)."""

    @property
    def db(self) -> sqlite3.Connection: ...

    def same_content(
        self, fingerprint: str, size: int, exclude: int, limit: int = 8
    ) -> list[JobRecord]: ...

    def in_state(
        self, state: JobState, after: int = 0, limit: int = 500, *, wait: bool = True
    ) -> list[JobRecord]: ...

    def rows(self, job_ids: list[int]) -> dict[int, JobRecord]: ...


class HeldJobs(Protocol):
    """The jobs held in memory (engine/lookahead.py), as the units step holds its page."""

    @property
    def elsewhere(self) -> set[int]: ...

    def from_row(self, rec: JobRecord) -> Job: ...

    def hold(self, job: Job) -> None: ...

    def release(self, job: Job) -> None: ...

    def maybe_release(self, job: Job) -> None: ...


class RegistrarContext(Protocol):
    """What the Registrar (engine/collections.py) needs from the manager."""

    @property
    def client(self) -> ProtocolClient: ...

    @property
    def journal(self) -> RegistrarJournal: ...

    @property
    def options(self) -> EngineOptions: ...

    @property
    def backoff(self) -> Backoff: ...

    @property
    def jobs(self) -> Mapping[int, Job]:
        """The jobs in memory (the others are rows of `session`)."""

    @property
    def session(self) -> RegistrarSession: ...

    @property
    def queue(self) -> HeldJobs: ...

    def subscribe(self, listener: Listener) -> None: ...

    def set_state(
        self, job: Job, state: JobState, message: str = "", *, persist: bool = True
    ) -> None: ...

    def fail(self, job: Job, message: str) -> None: ...

    def log(self, level: str, message: str, job_id: int | None = None) -> None: ...

    def emit(self, event: Event) -> None: ...
