"""Parse and format sizes, rates and durations (K/M/G/T are powers of 1024): one parser each."""

from __future__ import annotations

import re
from fractions import Fraction

_SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([kmgtp]?)(?:i?b)?\s*", re.IGNORECASE)
_POWERS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5}
_DURATION = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([smhd]?)\s*", re.IGNORECASE)
_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_size(text: str) -> int:
    """'50M' -> 52428800. Bytes or K/M/G/T/P suffixes (also KiB, MB: all x1024); a whole
    number of bytes only: '1.5G' is fine, '1.5' or '0.3K' is refused."""
    match = _SIZE.fullmatch(str(text))
    if not match:
        raise ValueError(f"invalid size {text!r}: use bytes or a K/M/G/T suffix, e.g. 50M")
    number, unit = match.groups()
    value = Fraction(number) * 1024 ** _POWERS[unit.lower()]
    if value.denominator != 1:
        raise ValueError(f"invalid size {text!r}: not a whole number of bytes")
    return int(value)


def parse_rate(text: str) -> float | None:
    """A bandwidth limit per second ('20M', '20M/s'); '0', 'off', 'none', '' mean unlimited."""
    text = str(text).strip()
    if text.lower() in ("", "0", "off", "none", "unlimited"):
        return None
    value = parse_size(text[:-2] if text.lower().endswith("/s") else text)
    return float(value) if value > 0 else None


def parse_duration(text: str) -> float:
    """'90' / '90s' / '15m' / '2h' / '1.5d' -> seconds, more than zero."""
    match = _DURATION.fullmatch(str(text))
    if not match:
        raise ValueError(f"invalid duration {text!r}: use seconds or an s/m/h/d suffix, e.g. 12h")
    number, unit = match.groups()
    seconds = float(number) * _SECONDS[unit.lower()]
    if seconds <= 0:
        raise ValueError(f"invalid duration {text!r}: must be more than zero")
    return seconds


def format_size(n: float) -> str:
    """52428800 -> '50.0 MiB'."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def format_rate(bytes_per_second: float | None) -> str:
    if bytes_per_second is None:
        return "unlimited"
    return format_size(bytes_per_second) + "/s"


def format_duration(seconds: float | None) -> str:
    """3725 -> '1h02m'; None -> '--'."""
    if seconds is None:
        return "--"
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600:02d}h"
