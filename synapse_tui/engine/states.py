"""A job's state machine: the allowed transitions in one table, and the totals they keep."""

from __future__ import annotations

from dataclasses import dataclass, field

from synapse_tui.engine.events import JobState

Q, H, U, F, R = (
    JobState.QUEUED,
    JobState.HASHING,
    JobState.UPLOADING,
    JobState.FINALIZING,
    JobState.REGISTERING,
)
P, D, S, X, C = (
    JobState.PAUSED,
    JobState.DONE,
    JobState.SKIPPED,
    JobState.FAILED,
    JobState.CANCELLED,
)
_ACTIVE = frozenset({H, U, F, R})
# From each state, where a job may go. A queued job may end any way at once: another
# process finished it (ownership.claim), or a small file's one request completed it. An
# active job goes back to queued only when a new process adopts it from the journal.
# Done and skipped are final; failed and cancelled may be queued again (retry, revive).
TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    Q: frozenset({H, U, F, R, P, D, S, X, C}),
    H: _ACTIVE | {Q, P, D, X, C},
    U: _ACTIVE | {Q, P, D, X, C},
    F: _ACTIVE | {Q, P, D, X, C},
    R: _ACTIVE | {Q, P, D, X, C},
    P: frozenset({Q, X, C, D, S, R}),
    D: frozenset(),
    S: frozenset(),
    X: frozenset({Q}),
    C: frozenset({Q}),
}


class IllegalTransition(ValueError):
    """A state change the table does not allow: a bug in the engine, never the user's."""


def check(old: JobState, new: JobState) -> None:
    if old != new and new not in TRANSITIONS[old]:
        raise IllegalTransition(f"job state {old.value} -> {new.value} is not allowed")


@dataclass
class Counters:
    """Count, bytes and bytes sent by state, over every job of a manager (in memory or only
    in the journal): kept on each state change, so totals never walk the queue.

    `sent` holds each job's bytes sent as of its last change; the bytes sent since by the
    jobs in memory are added when totals are asked for (see UploadManager.totals)."""

    count: dict[JobState, int] = field(default_factory=lambda: dict.fromkeys(JobState, 0))
    size: dict[JobState, int] = field(default_factory=lambda: dict.fromkeys(JobState, 0))
    sent: dict[JobState, int] = field(default_factory=lambda: dict.fromkeys(JobState, 0))

    def enter(self, state: JobState, size: int, sent: int) -> None:
        self.count[state] += 1
        self.size[state] += size
        self.sent[state] += sent

    def leave(self, state: JobState, size: int, sent: int) -> None:
        self.count[state] -= 1
        self.size[state] -= size
        self.sent[state] -= sent

    def add_sent(self, state: JobState, delta: int) -> None:
        self.sent[state] += delta

    @property
    def files(self) -> int:
        return sum(self.count.values())

    def bytes_total(self) -> int:
        """Every job's size but the cancelled ones'."""
        return sum(n for state, n in self.size.items() if state != C)

    def bytes_done(self) -> int:
        """Done jobs whole, the others as far as sent (cancelled ones not at all)."""
        return self.size[D] + sum(n for state, n in self.sent.items() if state not in (C, D))
