"""What `scan` reports of a folder, a batch at a time: duplicates and already-uploaded files."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from synapse_tui.engine import scan as scanning
from synapse_tui.engine.filters import PathFilter
from synapse_tui.engine.scan import FoundFile
from synapse_tui.engine.seen_index import SeenIndex, SeenKey

# The ledger's upload ids of a batch's (size, fingerprint) keys: one query per batch.
Ledger = Callable[[Sequence[SeenKey]], dict[SeenKey, str]]


@dataclass
class Checked:
    """One scan batch: its regular files counted, and its findings in the order met, each a
    dict with its `kind` ("duplicates", "uploaded", "refused", "failed") and `path`."""

    files: int = 0
    bytes: int = 0
    seconds: float = 0.0  # the loop time its checks took (lookups, index), for pacing
    findings: list[dict[str, Any]] = field(default_factory=list)


async def check_scan(
    paths: Sequence[bytes], ledger: Ledger | None, path_filter: PathFilter | None = None
) -> AsyncGenerator[Checked, None]:
    """Scan `paths` and yield what each batch holds. Memory does not grow with the folder:
    the files met are in a SeenIndex (SQLite, off the Python heap), and what a batch
    found is the caller's to write out before it asks for the next."""
    index = SeenIndex.private()
    scan_id = index.new_scan()
    try:
        async for batch in scanning.scan(list(paths), path_filter=path_filter):
            yield check_batch(batch, index, scan_id, ledger)
    finally:
        index.close()


def check_batch(
    batch: Sequence[Any], index: SeenIndex, scan_id: int, ledger: Ledger | None
) -> Checked:
    started = time.perf_counter()
    out = Checked()
    keys = [(i.identity.size, i.fingerprint) for i in batch if isinstance(i, FoundFile)]
    seen = index.seen(scan_id, keys)
    before = set(seen)
    uploads = ledger(keys) if ledger is not None and keys else {}
    for item in batch:
        if not isinstance(item, FoundFile):
            kind = "failed" if item.error else "refused"
            out.findings.append({"kind": kind, "path": item.display, "reason": item.reason})
            continue
        out.files += 1
        out.bytes += item.identity.size
        key = (item.identity.size, item.fingerprint)
        if key in seen:
            out.findings.append(
                {"kind": "duplicates", "path": item.display, "duplicate_of": seen[key]}
            )
        else:
            seen[key] = item.display
        if key in uploads:
            out.findings.append(
                {"kind": "uploaded", "path": item.display, "upload_id": uploads[key]}
            )
    index.note(scan_id, {k: seen[k] for k in seen if k not in before})
    out.seconds = time.perf_counter() - started
    return out
