"""Ids: the `{name:id}` path convertor (at most 18 digits) and upload ids (canonical UUIDs)."""

from __future__ import annotations

import os
import re

from starlette.convertors import IntegerConvertor, register_url_convertor


class IdConvertor(IntegerConvertor):
    # Starlette's `int` matches any number of digits, then int() raises past 4,300 of them
    # (a 500 from the router, unauthenticated) and SQLite overflows past 2**63: a longer
    # id matches no route (404) instead.
    regex = "[0-9]{1,18}"


register_url_convertor("id", IdConvertor())


# What str(uuid.UUID(x)) gives, and nothing else: lowercase hex in groups of 8-4-4-4-12.
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def is_upload_id(text: str) -> bool:
    """True for a canonical lowercase UUID string, the only thing used in storage paths.

    A pattern, not `str(uuid.UUID(text)) == text` (the same answer; parsing took ~2% of the
    loop thread's time with many small files, asked twice per request)."""
    return _CANONICAL_UUID.fullmatch(text) is not None


def new_upload_id() -> str:
    """A random (version 4) UUID in canonical form: `str(uuid.uuid4())` without the UUID
    object, whose construction cost ~2% of the loop thread's time with many small files."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # the RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
