"""The `{name:id}` path convertor: an integer id of at most 18 digits (SQLite's range)."""

from __future__ import annotations

from starlette.convertors import IntegerConvertor, register_url_convertor


class IdConvertor(IntegerConvertor):
    # Starlette's `int` matches any number of digits, then int() raises past 4,300 of them
    # (a 500 from the router, unauthenticated) and SQLite overflows past 2**63: a longer
    # id matches no route (404) instead.
    regex = "[0-9]{1,18}"


register_url_convertor("id", IdConvertor())
