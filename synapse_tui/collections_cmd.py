"""`synapse-tui collections`: the backend's data collections, with ids, names and specs."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from synapse_tui.config import Settings

if TYPE_CHECKING:
    from synapse_tui.engine.protocol import ProtocolClient


async def run_collections(
    settings: Settings,
    args: argparse.Namespace,
    make_client: Callable[[Settings], ProtocolClient],
    reach: Callable[[ProtocolClient], Awaitable[None]],
) -> int:
    """List them (`--json`: one object per line); 0, or 2 when the backend cannot be asked."""
    from synapse_tui.engine.catalog import list_collections

    client = make_client(settings)
    try:
        await reach(client)
        collections = await list_collections(client)
    finally:
        await client.aclose()
    if args.json:
        for c in collections:
            specs = [
                {"name": s.name, "file_type": s.file_type or None,
                 "is_required": s.is_required, "is_primary": s.is_primary}
                for s in c.details
            ]  # fmt: skip
            line = {"event": "collection", "id": c.id, "name": c.name, "file_specifications": specs}
            sys.stdout.write(json.dumps(line, ensure_ascii=False) + "\n")
        return 0
    if not collections:
        sys.stdout.write("no data collections on the backend\n")
        return 0
    width = max(len(c.name) for c in collections)
    sys.stdout.write(f"{'ID':>5}  {'NAME':<{width}}  SPECS (* primary, ? optional)\n")
    for c in collections:
        syntax = ",".join(s.syntax() for s in c.details)
        sys.stdout.write(f"{c.id:>5}  {c.name:<{width}}  {syntax}\n")
    return 0
