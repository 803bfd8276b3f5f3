"""Safe display of file names: bytes that are not UTF-8 and control characters are escaped."""

from __future__ import annotations

import os
import re

# Everything escape_text() leaves as it is: no C0, DEL, C1, surrogate or backslash.
_PLAIN = re.compile(r"[^\x00-\x1f\x7f-\x9f\\\ud800-\udfff]*")
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\x1b": "\\e", "\\": "\\\\"}


def escape_text(text: str) -> str:
    """Escape control characters (C0, DEL, C1), lone surrogates and backslashes."""
    if _PLAIN.fullmatch(text):  # the usual case, without a pass per character in Python
        return text
    out: list[str] = []
    for ch in text:
        code = ord(ch)
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape)
            out.append(f"\\x{code - 0xDC00:02x}")
        elif code < 0x20 or code == 0x7F or 0x80 <= code < 0xA0 or 0xD800 <= code <= 0xDFFF:
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)


def display_path(path: bytes | str) -> str:
    """A path as a single printable line, safe to show in a terminal or a log."""
    text = os.fsdecode(path) if isinstance(path, bytes) else path
    return escape_text(text)


def display_name(path: bytes | str) -> str:
    """The last component of a path, escaped: what is sent as the upload's filename."""
    raw = os.fsencode(path)
    base = os.path.basename(raw.rstrip(b"/")) or raw
    return display_path(base)


def upload_filename(path: bytes | str, limit: int = 255) -> str:
    """The filename sent to the server: escaped, and shortened to `limit` characters."""
    name = display_name(path)
    if len(name) <= limit:
        return name
    stem, dot, ext = name.rpartition(".")
    if dot and 0 < len(ext) <= 16:
        return stem[: limit - len(ext) - 2] + "~." + ext
    return name[: limit - 1] + "~"


def absolute(path: bytes) -> bytes:
    """`path` from the current folder, so the journal can resume it from any folder.

    Only `.` components and doubled slashes go: `..` stays, because after a symbolic link
    `link/..` is the link target's parent, not the current folder (what the kernel and the
    shell's `ls` see), and os.path.abspath would have named another file.
    """
    if not os.path.isabs(path):
        path = os.path.join(os.getcwd().encode(), path)
    parts = [p for p in path.split(b"/") if p not in (b"", b".")]
    return b"/" + b"/".join(parts)


def absolute_text(path: str) -> str:
    """`absolute` of a path as the command line gives it (text, surrogate-escaped)."""
    return os.fsdecode(absolute(os.fsencode(path)))
