"""The engine's exception tree: what is transient, fatal or local to one file is decided here.

SynapseError
├── TransientError          retry with backoff (connection, timeout, 408, 429, 5xx)
│   └── OutcomeUnknown      the request may have been applied: GET the state first
│       └── Busy            409: another request writes to this upload; wait, GET, go on
├── FatalError              stop every job, no retry loop
│   ├── AuthError           401 / 403
│   ├── OriginError         a server URL outside the configured origin (token withheld)
│   ├── TLSError            the TLS handshake was refused (certificate, plain HTTP port)
│   └── ConfigError         missing host, bad option
└── FileError               this file fails, the batch goes on
    ├── ServerRejected      413, 507 and other 4xx, with the server's message
    ├── LocalFileError      not a regular file, unreadable, vanished
    ├── FileChangedError    size, mtime, inode or content changed during upload
    ├── ProtocolError       the server answered something that is not the protocol
    └── ChecksumMismatch    the server's MD5 differs from ours
UploadGone (404 / 410)      the upload to resume is gone: start a new one
OffsetMismatch              the server's offset differs from ours: carries expected
"""

from __future__ import annotations


class SynapseError(Exception):
    """Base of every error the engine raises on purpose."""


class TransientError(SynapseError):
    """Worth retrying after a pause; `retry_after` is the server's hint in seconds."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class OutcomeUnknown(TransientError):
    """The request may or may not have been applied; the server's state is the truth."""


class Busy(OutcomeUnknown):
    """409: another request (often our own timed-out one) is still writing to the upload.

    `wait` is the server's Retry-After for this upload only: it holds back this job, not
    every job as a 429's `retry_after` does.
    """

    def __init__(self, message: str, *, wait: float | None = None) -> None:
        super().__init__(message)
        self.wait = wait


class FatalError(SynapseError):
    """Nothing else can succeed: stop everything."""


class JournalFailed(FatalError):
    """A journal write failed (disk full, I/O error): nothing more may be sent, since what
    was sent could not be recorded."""


class AuthError(FatalError):
    """The server refused the credentials."""


class OriginError(FatalError):
    """A URL from the server points outside the configured origin."""


class TLSError(FatalError):
    """TLS refused: the certificate does not verify, or the port does not speak TLS."""


class ConfigError(FatalError):
    """Configuration is missing or invalid."""


class FileError(SynapseError):
    """This one file cannot be uploaded; the rest of the batch goes on."""


class ServerRejected(FileError):
    """The server refused the file with a 4xx/507 answer."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class LocalFileError(FileError):
    """The local file cannot be read as a regular file."""


class FileChangedError(FileError):
    """The file changed while it was being uploaded."""


class ProtocolError(FileError):
    """The server's answer does not follow the protocol."""


class ChecksumMismatch(FileError):
    """The server computed another MD5 than we did."""


class UploadGone(SynapseError):
    """The upload being resumed is unknown (404) or expired (410)."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class OffsetMismatch(SynapseError):
    """The server holds a different offset than the chunk we sent started at."""

    def __init__(self, expected: int, provided: int) -> None:
        super().__init__(f"offsets do not match: server has {expected}, we sent {provided}")
        self.expected = expected
        self.provided = provided


class AlreadyComplete(SynapseError):
    """The server says the upload is already complete."""
