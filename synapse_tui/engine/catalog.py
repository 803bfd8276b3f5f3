"""The backend's data collections: fetched by id, listed page by page, or found by name."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from synapse_tui.engine.errors import ConfigError, ProtocolError, UploadGone
from synapse_tui.engine.names import escape_text
from synapse_tui.engine.protocol import ProtocolClient

PAGE_SIZE = 100
PAGES_MAX = 1000  # a bound on the walk, whatever the server answers


@dataclass(frozen=True)
class SpecInfo:
    """A file specification as the backend describes it."""

    name: str
    file_type: str = ""
    is_required: bool = True
    is_primary: bool = False

    def syntax(self) -> str:
        """`image*:image`, `label?:data`: the `serve --collection` form."""
        marks = ("*" if self.is_primary else "") + ("" if self.is_required else "?")
        return self.name + marks + (f":{self.file_type}" if self.file_type else "")


@dataclass(frozen=True)
class Collection:
    id: int
    name: str
    specs: tuple[str, ...]
    details: tuple[SpecInfo, ...] = field(default=(), compare=False)


def _spec(raw: Any) -> SpecInfo | None:
    if isinstance(raw, str):
        return SpecInfo(escape_text(raw))
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        return None
    return SpecInfo(
        escape_text(raw["name"]),  # server text: shown in terminals, never raw
        str(raw.get("file_type") or ""),
        bool(raw.get("is_required", True)),
        bool(raw.get("is_primary", False)),
    )


def parse_collection(data: Any, fallback_id: int | None = None) -> Collection:
    if not isinstance(data, dict) or ("id" not in data and fallback_id is None):
        raise ProtocolError("data collection answer is not an object with an id")
    details = tuple(s for s in map(_spec, data.get("file_specifications") or []) if s)
    raw_id: Any = data.get("id", fallback_id)
    try:
        cid = int(raw_id)
    except (TypeError, ValueError):
        raise ProtocolError("data collection id is not a number") from None
    name = escape_text(str(data.get("name", "")))
    return Collection(cid, name, tuple(s.name for s in details), details)


async def fetch_collection(client: ProtocolClient, collection_id: int) -> Collection:
    data = await client.get_json(
        f"data_collections/{collection_id}/", {"expand": "file_specifications"}
    )
    return parse_collection(data, collection_id)


async def list_collections(client: ProtocolClient) -> list[Collection]:
    """Every collection the backend lists (a DRF page after page, or a bare list)."""
    out: list[Collection] = []
    for number in range(1, PAGES_MAX + 1):
        params = {"expand": "file_specifications", "page_size": str(PAGE_SIZE)}
        if number > 1:
            params["page"] = str(number)
        data = await client.get_json("data_collections/", params)
        items = data.get("results") if isinstance(data, dict) else data
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict) and "id" in item:
                out.append(parse_collection(item))
        if not isinstance(data, dict) or not data.get("next") or not items:
            break
    return out


async def resolve_collection(client: ProtocolClient, text: str) -> Collection:
    """`--collection` given as an id (`3`) or a name (`photos`); ConfigError when neither
    names exactly one collection of the backend."""
    wanted = text.strip()
    if wanted.isdigit():
        try:
            return await fetch_collection(client, int(wanted))
        except UploadGone:
            raise ConfigError(f"no data collection {wanted} on the backend") from None
    every = await list_collections(client)
    found = [c for c in every if c.name == wanted] or [
        c for c in every if c.name.casefold() == wanted.casefold()
    ]
    if len(found) == 1:
        # The list may abbreviate specs: the collection itself has them all.
        return await fetch_collection(client, found[0].id)
    if found:
        ids = ", ".join(str(c.id) for c in found)
        raise ConfigError(f"{len(found)} data collections are named {wanted!r}: give an id ({ids})")
    names = ", ".join(f"{c.name} ({c.id})" for c in every) or "none"
    raise ConfigError(f"no data collection named {wanted!r} on the backend (it has: {names})")
