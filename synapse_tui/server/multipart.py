"""Streaming multipart/form-data parsing on python-multipart's low-level parser.

Text fields are collected (bounded); the bytes of the first `file` part go to a
sink as zero-copy memoryviews of the received chunks, so a 50 MiB chunk is never
held in memory or spooled to a temp file.

A small body already received whole takes `parse_whole` first: the plain shape every
client sends (no preamble, `Name: value` headers, a simple Content-Disposition) is cut
at its boundaries with `bytes.find`, where python-multipart's byte-by-byte state machine
and its header parser cost ~20% of the server's time per small file. Anything else,
and every error, goes through the streaming parser, which has the last word.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from python_multipart.multipart import MultipartParser, parse_options_header

MAX_FIELD_BYTES = 64 * 1024
MAX_FIELDS = 64  # text fields of one form (file parts are not kept: not counted)
_PLAIN_HEAD = 4096  # a part head longer than this is not the plain shape
MAX_FIELDS_BYTES = 1 << 20  # all text fields of one form together (their count: MAX_FIELDS)


class FormError(ValueError):
    """The body is not a well-formed form (answered 400)."""


# `form-data; name="x"` with an optional `; filename="y"`, nothing escaped or repeated.
_SIMPLE_DISPOSITION = re.compile(rb'form-data; name="([^"\\]*)"(; filename="([^"\\]*)")?')
_SIMPLE_CONTENT_TYPE = re.compile(r"multipart/form-data; boundary=([0-9A-Za-z'()+_,./:=?-]{1,70})")


def boundary_of(content_type: str | None) -> bytes | None:
    """The boundary of a multipart/form-data Content-Type, else None."""
    if not content_type:
        return None
    simple = _SIMPLE_CONTENT_TYPE.fullmatch(content_type)
    if simple is not None:
        return simple.group(1).encode("ascii")
    kind, params = parse_options_header(content_type)
    if kind != b"multipart/form-data":
        return None
    boundary = params.get(b"boundary")
    return boundary or None


class StreamingForm:
    """Feed it the body chunk by chunk; read `fields`, `file_seen`, `file_size` at the end."""

    def __init__(
        self,
        boundary: bytes,
        sink: Callable[[memoryview], None] | None,
        file_field: str = "file",
    ) -> None:
        self.fields: dict[str, str] = {}
        self.file_seen = False
        self.file_size = 0
        self.file_name: str | None = None  # the `file` part's filename, as the client sent it
        self.complete = False
        self._file_field = file_field
        self._sink = sink
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._headers: dict[bytes, bytes] = {}
        self._field_count = 0
        self._kind = "skip"  # "file", "field" or "skip" for the current part
        self._name = ""
        self._value = bytearray()
        self._fields_size = 0
        self._chunk: bytes = b""
        self._view = memoryview(b"")
        self._parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._part_begin,
                "on_header_field": self._header_field_data,
                "on_header_value": self._header_value_data,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._part_data,
                "on_part_end": self._part_end,
                "on_end": self._end,
            },
        )

    def feed(self, data: bytes) -> None:
        if not data:
            return
        self._chunk = data
        self._view = memoryview(data)
        try:
            self._parser.write(data)
        except FormError:
            raise
        except Exception as exc:  # python-multipart raises its own error types
            raise FormError(f"Multipart form parse error - {exc}") from None

    def close(self) -> None:
        """Call once the body ended; raises FormError if it was cut short."""
        if not self.complete:
            raise FormError("Multipart form parse error - Invalid boundary in multipart: None")

    # -- parser callbacks ----------------------------------------------------

    def _part_begin(self) -> None:
        self._headers = {}
        self._header_field.clear()
        self._header_value.clear()

    def _header_field_data(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def _header_value_data(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        self._headers[bytes(self._header_field).lower()] = bytes(self._header_value)
        self._header_field.clear()
        self._header_value.clear()

    def _headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        self._name = params.get(b"name", b"").decode("utf-8", "replace")
        self._value = bytearray()
        if self._name == self._file_field:
            if not self.file_seen and b"filename" in params:
                self.file_name = params[b"filename"].decode("utf-8", "replace")
            self._kind = "skip" if self.file_seen else "file"
            self.file_seen = True
        elif b"filename" in params:
            self._kind = "skip"  # other uploaded files are not ours to store
        else:
            self._kind = "field"
            self._field_count += 1
            if self._field_count > MAX_FIELDS:
                raise FormError("Too many form fields")

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        kind = self._kind
        if kind == "file":
            self.file_size += end - start
            if self._sink is not None:
                view = self._view if data is self._chunk else memoryview(data)
                self._sink(view[start:end])
        elif kind == "field":
            if len(self._value) + end - start > MAX_FIELD_BYTES:
                raise FormError(f"Form field {self._name!r} is too large")
            self._fields_size += end - start
            if self._fields_size > MAX_FIELDS_BYTES:
                raise FormError("The form's fields are too large")
            self._value += data[start:end]

    def _part_end(self) -> None:
        if self._kind == "field":
            self.fields.setdefault(self._name, self._value.decode("utf-8", "replace"))
        self._kind = "skip"

    def _end(self) -> None:
        self.complete = True


@dataclass
class WholeForm:
    """What `parse_whole` found: the same answers as a `StreamingForm` fed that body."""

    fields: dict[str, str] = field(default_factory=dict)
    file_seen: bool = False
    file_size: int = 0
    file_name: str | None = None


def parse_whole(
    body: bytes,
    boundary: bytes,
    sink: Callable[[memoryview], None] | None,
    file_field: str = "file",
) -> WholeForm | None:
    """A whole body of the plain shape, parsed as `StreamingForm` would, the file part's
    bytes handed to `sink`; None (and nothing sunk) for any other shape or any error: the
    caller then feeds the streaming parser, which decides."""
    delimiter = b"--" + boundary
    if not body.startswith(delimiter):
        return None
    view = memoryview(body)
    form = WholeForm()
    content: memoryview | None = None
    texts = 0
    pos = len(delimiter)
    while True:
        after = body[pos : pos + 2]
        if after == b"--":  # the closing delimiter: at most a CRLF may follow
            if body[pos + 2 :] not in (b"", b"\r\n") or pos == len(delimiter):
                return None
            break
        if after != b"\r\n":
            return None
        head_end = body.find(b"\r\n\r\n", pos)
        if head_end < 0 or head_end - pos > _PLAIN_HEAD:  # python-multipart caps heads
            return None
        disposition = None
        for line in body[pos + 2 : head_end].split(b"\r\n"):
            name, colon, value = line.partition(b":")
            if not colon or not name or name != name.strip():
                return None
            if name.lower() == b"content-disposition":
                if disposition is not None:
                    return None
                disposition = value.strip(b" ")
        start = head_end + 4
        end = body.find(b"\r\n" + delimiter, start)
        if disposition is None or end < 0:
            return None
        simple = _SIMPLE_DISPOSITION.fullmatch(disposition)
        if simple is None:
            return None
        try:
            part_name = simple.group(1).decode("utf-8")
        except UnicodeDecodeError:
            return None
        if part_name == file_field:
            if not form.file_seen:  # a second file part is skipped, as when streaming
                form.file_seen = True
                content = view[start:end]
                if simple.group(3) is not None:
                    form.file_name = simple.group(3).decode("utf-8", "replace")
        elif simple.group(2) is None:  # a text field (other files are not ours to store)
            texts += 1
            if end - start > MAX_FIELD_BYTES or texts > MAX_FIELDS:
                return None  # the streaming parser says why
            text = body[start:end].decode("utf-8", "replace")
            form.fields.setdefault(part_name, text)
        pos = end + 2 + len(delimiter)
    if content is not None:
        form.file_size = len(content)
        if sink is not None and len(content):
            sink(content)
    return form


def parse_small_body(content_type: str | None, body: bytes) -> dict[str, Any]:
    """The fields of a JSON, urlencoded or multipart body already read in full."""
    boundary = boundary_of(content_type)
    if boundary is not None:
        form = StreamingForm(boundary, sink=None)
        form.feed(body)
        form.close()
        return dict(form.fields)
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    if kind == "application/x-www-form-urlencoded":
        return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    if kind == "application/json" or (not kind and body.strip()):
        if not body.strip():
            return {}
        try:
            parsed = json.loads(body)
        except ValueError as exc:
            raise FormError(f"JSON parse error - {exc}") from None
        if not isinstance(parsed, dict):
            return {}
        return parsed
    return {}
