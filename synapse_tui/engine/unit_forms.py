"""The text forms of a collection upload: --spec-map and --meta, a data unit's body."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def parse_spec_map(text: str) -> dict[str, str]:
    """'jpg=image,json=meta' -> {'jpg': 'image', 'json': 'meta'}."""
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        ext, sep, spec = part.partition("=")
        if not sep or not ext.strip() or not spec.strip():
            raise ValueError(f"--spec-map takes EXT=NAME pairs separated by commas, not {part!r}")
        out[ext.strip().lstrip(".").lower()] = spec.strip()
    return out


def parse_meta(pairs: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--meta takes KEY=VALUE, not {pair!r}")
        out[key] = value
    return out


def unit_body(collection: int, members: list[dict[str, Any]]) -> dict[str, Any]:
    """The data unit for a group of registered files (each: spec, checksum, path, meta)."""
    files = {m["spec"]: {"checksum": m["checksum"], "path": m["path"]} for m in members}
    meta: dict[str, Any] = {}
    for m in members:
        meta.update(m["meta"])
    if len(members) > 1:
        meta["origin_file_extension"] = ",".join(
            sorted(m["meta"].get("origin_file_extension", "") for m in members)
        )
    return {"data_collection": collection, "files": files, "meta": meta}


def same_unit(found: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """Is `found` (from the server) the unit `wanted` describes? Files' checksums and stem."""
    try:
        found_files = {k: v["checksum"] for k, v in found["files"].items()}
    except (KeyError, TypeError, AttributeError):
        return False
    wanted_files = {k: v["checksum"] for k, v in wanted["files"].items()}
    stem = (found.get("meta") or {}).get("origin_file_stem")
    return found_files == wanted_files and stem == wanted["meta"].get("origin_file_stem")
