"""File specifications of a data collection and the `--collection` syntax that declares them.

`NAME:SPEC[,SPEC...]`, each SPEC `spec[*][?][:TYPE]`: `*` marks the primary file, `?` an
optional one, TYPE is one of FILE_TYPES. `photos:image*:image,label?:data`. The plain
`photos:image,label` still works: every spec required, the first one primary, the type
guessed from the spec's name (`image`, `video`, ... else `data`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

FILE_TYPES = ("image", "video", "audio", "text", "pcd", "data")
NAME_MAX = 50  # Synapse's file specification name is a CharField(max_length=50)
_MARKS = "*?"
_RESERVED = ",:*?"


@dataclass(frozen=True)
class FileSpec:
    """One file specification as `data_collections/<id>/` answers it."""

    name: str
    file_type: str = "data"
    is_required: bool = True
    is_primary: bool = False

    def render(self, index: int) -> dict[str, Any]:
        return {
            "id": index,
            "name": self.name,
            "file_type": self.file_type,
            "is_required": self.is_required,
            "is_primary": self.is_primary,
            "function_type": "main" if self.is_primary else "sub",
            "index": index,
        }

    def syntax(self) -> str:
        marks = ("*" if self.is_primary else "") + ("" if self.is_required else "?")
        return f"{self.name}{marks}:{self.file_type}"


def guess_type(name: str) -> str:
    lowered = name.lower()
    return lowered if lowered in FILE_TYPES else "data"


def parse_spec(text: str) -> FileSpec:
    """`label?:data` -> FileSpec("label", "data", is_required=False); ValueError if malformed."""
    head, sep, kind = text.strip().partition(":")
    head = head.strip()
    marks = ""
    while head and head[-1] in _MARKS:
        marks = head[-1] + marks
        head = head[:-1].rstrip()
    if not head or any(c in head for c in _RESERVED) or len(set(marks)) != len(marks):
        raise ValueError(f"invalid file specification {text.strip()!r}: use name[*][?][:type]")
    if len(head) > NAME_MAX:
        raise ValueError(f"file specification {head!r} is longer than {NAME_MAX} characters")
    kind = kind.strip().lower()
    if sep and kind not in FILE_TYPES:
        raise ValueError(
            f"invalid file type {kind!r} of {head!r}: use one of {', '.join(FILE_TYPES)}"
        )
    return FileSpec(head, kind or guess_type(head), "?" not in marks, "*" in marks)


def normalize(specs: list[Any]) -> list[FileSpec]:
    """Specs given as FileSpec or as names (the old form): exactly one primary, names
    distinct and non-empty; ValueError otherwise."""
    out = [s if isinstance(s, FileSpec) else FileSpec(str(s), guess_type(str(s))) for s in specs]
    names = [s.name for s in out]
    if not out or not all(names) or len(set(names)) != len(names):
        raise ValueError("needs distinct, non-empty file specification names")
    primaries = [s for s in out if s.is_primary]
    if len(primaries) > 1:
        raise ValueError("has more than one primary file specification (*)")
    if not primaries:
        first = out[0]
        out[0] = FileSpec(first.name, first.file_type, first.is_required, True)
    return out


def parse_collection(text: str) -> tuple[str, list[FileSpec]]:
    """`photos:image*:image,label?:data` -> ("photos", [FileSpec(...), FileSpec(...)])."""
    name, sep, rest = text.partition(":")
    usage = f"invalid collection {text!r}: use NAME:spec[*][?][:type],... (distinct specs)"
    parts = [p for p in rest.split(",") if p.strip()]
    if not sep or not name.strip() or not parts:
        raise ValueError(usage)
    specs = [parse_spec(p) for p in parts]
    try:
        return name.strip(), normalize(specs)
    except ValueError as exc:
        raise ValueError(f"invalid collection {text!r}: {exc}") from None
