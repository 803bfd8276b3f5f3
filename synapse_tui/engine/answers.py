"""The server's answers read once, in one place: upload state, error mapping, escaped text."""

from __future__ import annotations

import email.utils
import json
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from synapse_tui.engine.errors import (
    AlreadyComplete,
    AuthError,
    Busy,
    ChecksumMismatch,
    OffsetMismatch,
    ProtocolError,
    ServerRejected,
    TransientError,
    UploadGone,
)
from synapse_tui.engine.names import escape_text

# Retry-After values above this are capped: a server asking for an hour is not obeyed blindly.
MAX_RETRY_AFTER = 300.0
# A server's message is cut to this many characters (after escaping) in errors and logs.
DETAIL_LIMIT = 300
# drf-chunked-upload's status values.
UPLOADING, COMPLETE = 1, 2


@dataclass(frozen=True)
class UploadInfo:
    """The server's view of one chunked upload."""

    id: str
    url: str
    offset: int
    status: int
    filename: str | None
    completed_at: str | None
    checksum: str | None
    # What some servers add (the embedded backend): the upload's declared total and when it
    # expires (epoch seconds), and the answer's Date: a resume checks them before sending.
    size: int | None = None
    expires_at: float | None = None
    server_time: float | None = None

    def expired(self) -> bool:
        """The server says the upload expired (by the server's own clock when it sent one)."""
        now = self.server_time if self.server_time is not None else time.time()
        return self.expires_at is not None and self.expires_at <= now

    @property
    def complete(self) -> bool:
        """Complete only when the server says so: status 2, or (a server without a status)
        a completion time. "status 1" is never complete, whatever else the answer holds."""
        if self.status == COMPLETE:
            return True
        return self.status == 0 and bool(self.completed_at)

    def record(self) -> dict[str, Any]:
        """What the journal keeps of the answer: these fields, never the whole body."""
        return {
            "id": self.id,
            "url": self.url,
            "offset": self.offset,
            "status": self.status,
            "checksum": self.checksum,
            "completed_at": self.completed_at,
        }

    @classmethod
    def parse(cls, data: Any) -> UploadInfo:
        if not isinstance(data, dict):
            raise ProtocolError(f"server answered {type(data).__name__}, expected a JSON object")
        try:
            offset = data["offset"]
            upload_id = data["id"]
            url = data["url"]
            if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
                raise TypeError("offset")
            if not isinstance(url, str) or not isinstance(upload_id, str | int):
                raise TypeError("url/id")
            if isinstance(upload_id, bool) or escape_text(str(upload_id)) != str(upload_id):
                raise TypeError("id")  # control characters: shown in logs, never sent raw
        except (KeyError, TypeError) as exc:
            raise ProtocolError(f"server answer lacks a valid {exc.args[0]!s}") from None
        status = data.get("status")
        completed_at = data.get("completed_at")
        checksum = data.get("checksum")
        filename = data.get("filename")
        return cls(
            id=str(upload_id),
            url=url,
            offset=offset,
            status=status if isinstance(status, int) and not isinstance(status, bool) else 0,
            filename=filename if isinstance(filename, str) else None,
            completed_at=escape_text(completed_at) if isinstance(completed_at, str) else None,
            checksum=escape_text(checksum) if isinstance(checksum, str) else None,
            size=_count(data.get("size")),
            expires_at=_instant(data.get("expires_at")),
        )


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _instant(value: object) -> float | None:
    """Epoch seconds of an ISO 8601 time with a zone ("2026-01-01T00:00:00Z"), else None."""
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return when.timestamp() if when.tzinfo is not None else None


def server_time(response: httpx.Response) -> float | None:
    """The answer's Date header as epoch seconds (None: absent or unreadable)."""
    value = response.headers.get("date")
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), capped."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds:  # NaN
        return None
    return max(0.0, min(seconds, MAX_RETRY_AFTER))


def _detail(response: httpx.Response) -> tuple[str, dict[str, Any]]:
    """The server's message for a failed request, escaped (it reaches terminals, logs and
    the journal), and the JSON body if there is one."""
    try:
        data = response.json()
    except ValueError:
        text = response.text.strip().replace("\n", " ")
        message = text or response.reason_phrase or f"HTTP {response.status_code}"
        return escape_text(message[: DETAIL_LIMIT * 2])[:DETAIL_LIMIT], {}
    if isinstance(data, dict):
        detail = data.get("detail", data)
        return escape_text(_flatten(detail)[: DETAIL_LIMIT * 2])[:DETAIL_LIMIT], data
    if isinstance(data, list) and data:
        return escape_text(str(data[0])[: DETAIL_LIMIT * 2])[:DETAIL_LIMIT], {}
    return f"HTTP {response.status_code}", {}


def _flatten(detail: Any) -> str:
    """DRF error bodies as one line: {"file": ["The submitted file is empty."]} -> "file: ..."."""
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):
        return "; ".join(_flatten(d) for d in detail)
    if isinstance(detail, dict):
        return "; ".join(f"{k}: {_flatten(v)}" for k, v in detail.items())
    return json.dumps(detail)


def _int_field(data: dict[str, Any], *names: str) -> int | None:
    for name in names:
        value = data.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def raise_for_answer(response: httpx.Response) -> None:
    """Map a non-2xx answer to the engine's error tree (see errors.py).

    The status decides first, then a stable field of the body where the server gives one
    (`expected_offset`); the human-readable text is only the fallback, for the cases
    drf-chunked-upload 0.6.0 tells apart by nothing else (already complete, checksum).
    """
    code = response.status_code
    if 200 <= code < 300:
        return
    message, data = _detail(response)
    if 300 <= code < 400:
        raise ProtocolError(f"server redirected ({code}); redirects are not followed")
    if code in (401, 403):
        raise AuthError(f"authentication failed ({code}): {message}")
    if code in (404, 410):
        raise UploadGone(
            f"upload {'expired' if code == 410 else 'not found'}: {message}", status=code
        )
    if code == 409:  # another request holds the upload (the embedded backend's writer lock)
        wait = parse_retry_after(response.headers.get("Retry-After"))
        raise Busy(f"server busy with this upload (409): {message}", wait=wait)
    if code == 408 or code == 429 or (code >= 500 and code != 507):
        raise TransientError(
            f"server busy ({code}): {message}",
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )
    if code == 400:
        lowered = message.lower()
        expected = _int_field(data, "expected_offset")
        if expected is None and "offsets do not match" in lowered:
            expected = _int_field(data, "offset")  # drf-chunked-upload before 0.6
        if expected is not None:
            provided = _int_field(data, "provided_offset")
            raise OffsetMismatch(expected, -1 if provided is None else provided)
        if "already been marked" in lowered and "complete" in lowered:
            raise AlreadyComplete(message)
        if "checksum does not match" in lowered:
            raise ChecksumMismatch("server says the checksum does not match")
    raise ServerRejected(f"server refused ({code}): {message}", status=code)


def confirm_refusal(error: str) -> str:
    """What a presigned confirm's per-file error means. The API gives only its text (no
    status or code per file), so it is read here, beside the other text fallbacks:
    "checksum" (the storage holds other bytes), "again" (nothing or not all landed, the
    multipart upload is gone, or the backend forgot the key: a new key and a new upload
    may work) or "refused"."""
    lowered = error.lower()
    if "checksum" in lowered:
        return "checksum"
    if any(w in lowered for w in ("uploaded", "storage holds", "multipart", "unknown file")):
        return "again"
    return "refused"
