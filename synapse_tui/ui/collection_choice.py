"""Turning what the collection dialog holds into a CollectionPlan, and a plan into words."""

from __future__ import annotations

from collections.abc import Iterable

from synapse_tui.engine.collections import (
    Collection,
    CollectionPlan,
    parse_meta,
    parse_spec_map,
)
from synapse_tui.engine.errors import ConfigError

# Extensions that usually fill a spec of this name (beyond the name itself).
SPEC_ALIASES: dict[str, tuple[str, ...]] = {
    "image": ("jpg", "jpeg", "png", "tif", "tiff", "bmp", "gif", "webp"),
    "meta": ("json",),
    "metadata": ("json",),
    "annotation": ("json", "xml"),
    "text": ("txt", "md"),
    "video": ("mp4", "mov", "avi", "mkv"),
    "audio": ("wav", "mp3", "flac"),
    "pointcloud": ("pcd", "ply", "las"),
}


def suggest_spec_map(specs: Iterable[str], extensions: Iterable[str]) -> str:
    """`jpg=image,json=meta`: the known extensions whose name (or usual alias) is a spec."""
    specs = list(specs)
    pairs = []
    for ext in sorted(set(extensions)):
        for spec in specs:
            if ext == spec.lower() or ext in SPEC_ALIASES.get(spec.lower(), ()):
                pairs.append(f"{ext}={spec}")
                break
    return ",".join(pairs)


def parse_meta_text(text: str) -> dict[str, str]:
    """`site=A, batch=7` -> {'site': 'A', 'batch': '7'}; ValueError with a one-line message."""
    pairs = [p.strip() for p in text.split(",") if p.strip()]
    try:
        return parse_meta(pairs)
    except ValueError as exc:
        raise ValueError(str(exc).replace("--meta", "meta")) from None


def build_plan(
    collection: Collection, spec: str | None, group_by_stem: bool, spec_map: str, meta: str
) -> CollectionPlan:
    """The plan the dialog describes; ConfigError (one line) when it cannot work."""
    try:
        mapping = parse_spec_map(spec_map) if group_by_stem else {}
        meta_values = parse_meta_text(meta)
    except ValueError as exc:
        raise ConfigError(str(exc).replace("--spec-map", "the spec map")) from None
    if group_by_stem and not mapping:
        raise ConfigError("group by stem needs a spec map: EXT=NAME pairs, e.g. jpg=image")
    plan = CollectionPlan(
        collection,
        spec=None if group_by_stem else spec,
        group_by_stem=group_by_stem,
        spec_map=mapping,
        meta=meta_values,
    )
    plan.validate()
    return plan


def describe_plan(plan: CollectionPlan | None) -> str:
    """`→ collection images (image, meta) · spec image`; plain uploads without a plan."""
    if plan is None:
        return "→ plain uploads (no data collection)"
    c = plan.collection
    text = f"→ collection {c.name or c.id} ({', '.join(c.specs)})"
    if plan.group_by_stem:
        text += " · by stem: " + ",".join(f"{k}={v}" for k, v in plan.spec_map.items())
    elif plan.spec:
        text += f" · spec {plan.spec}"
    if plan.meta:
        text += " · meta " + ",".join(f"{k}={v}" for k, v in plan.meta.items())
    return text
