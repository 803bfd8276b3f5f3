"""The engine's own rows in the journal file: its settings, and windows of the queue."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from synapse_tui.engine.journal import uploaded_among
from synapse_tui.engine.names import display_path

SCHEMA = "CREATE TABLE IF NOT EXISTS engine_settings (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
MAX_WINDOW = 1000  # rows per `list` answer: a client asks for what it shows


class EngineStore:
    """A connection of its own to the journal's database (WAL: readers never block the
    engine's writer), so the journal's module stays the engine's. Its writes wait for
    the database's lock (another process may hold it): the engine makes them off its
    loop (`save_async`), and opens the store off it too (the table may be new)."""

    def __init__(self, path: Path) -> None:
        # Made on one thread, read on the loop's, written on worker threads (one at a time).
        self._db = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA busy_timeout=10000")
        self._w = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
        self._w.execute("PRAGMA busy_timeout=10000")
        self._w.execute(SCHEMA)
        self._writing = threading.Lock()
        self._order: asyncio.Lock | None = None  # saves from the loop, in the order asked
        # `status` asks whether a failed path was uploaded since, a page at a time: by the
        # journal's index ledger_path (engine/journal.py SCHEMA).

    def close(self) -> None:
        self._db.close()
        with self._writing:
            self._w.close()

    def settings(self) -> dict[str, Any]:
        rows = self._db.execute("SELECT key, value FROM engine_settings").fetchall()
        out: dict[str, Any] = {}
        for row in rows:
            try:
                out[row["key"]] = json.loads(row["value"])
            except ValueError:
                continue  # a row this version cannot read: its default instead
        return out

    def save(self, **values: Any) -> None:
        """Set these settings, in one transaction (blocking: see `save_async`)."""
        with self._writing, self._w:
            self._w.execute("BEGIN IMMEDIATE")
            for key, value in values.items():
                self._w.execute(
                    "INSERT INTO engine_settings(key, value) VALUES (?, ?) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    (key, json.dumps(value)),
                )

    async def save_async(self, **values: Any) -> None:
        """`save` on a worker thread: the loop goes on while it waits for the lock; saves
        asked one after another land in that order."""
        await self.update_async(lambda _saved: values)

    async def update_async(self, change: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        """Save what `change` makes of the settings, read after every save asked before
        (a read-modify-write no other save of this store interleaves)."""
        if self._order is None:
            self._order = asyncio.Lock()
        async with self._order:
            values = change(self.settings())
            await asyncio.to_thread(self.save, **values)

    def window(
        self, host: str, offset: int, limit: int, state: str | None
    ) -> tuple[int, list[dict[str, Any]]]:
        """(rows matching, up to `limit` of them from `offset`), by id, from the index:
        what the engine holds in memory is laid over them by the caller."""
        limit = max(0, min(MAX_WINDOW, limit))
        where, args = "host = ?", [host]
        if state:
            where += " AND state = ?"
            args.append(state)
        (total,) = self._db.execute(f"SELECT COUNT(*) FROM jobs WHERE {where}", args).fetchone()
        rows = self._db.execute(
            "SELECT id, path, size, state, offset, attempts, last_error, upload_id, md5 "
            f"FROM jobs WHERE {where} ORDER BY id LIMIT ? OFFSET ?",
            [*args, limit, max(0, offset)],
        ).fetchall()
        jobs = [
            {
                "id": r["id"],
                "path": display_path(r["path"]),
                "size": r["size"],
                "state": r["state"],
                "sent": r["offset"],
                "attempts": r["attempts"],
                "last_error": r["last_error"],
                "upload_id": r["upload_id"],
                "md5": r["md5"],
            }
            for r in rows
        ]
        return int(total), jobs

    def status_rows(
        self, states: list[str] | None, after: tuple[int, int] | None, limit: int
    ) -> list[sqlite3.Row]:
        """Up to `limit` jobs after the cursor `after`: in `states` by (priority desc, id),
        each state read by its index (jobs_queue) and merged; else (None) every job by id."""
        cols = "id, path, size, offset, host, upload_id, md5, attempts, last_error, state, "
        cols += "priority, updated_at"
        if states is None:
            start = after[1] if after else 0
            sql = f"SELECT {cols} FROM jobs WHERE id > ? ORDER BY id LIMIT ?"
            return list(self._db.execute(sql, (start, limit)))
        rows: list[sqlite3.Row] = []
        for state in states:
            if after is not None:
                same = f"SELECT {cols} FROM jobs WHERE state = ? AND priority = ? AND id > ? "
                rows += self._db.execute(same + "ORDER BY id LIMIT ?", (state, *after, limit))
            lower = f"SELECT {cols} FROM jobs WHERE state = ?"
            lower += " AND priority < ?" if after is not None else ""
            lower += " ORDER BY priority DESC, id LIMIT ?"
            rows += self._db.execute(lower, (state, after[0], limit) if after else (state, limit))
        rows.sort(key=lambda r: (-r["priority"], r["id"]))
        return rows[:limit]

    def uploaded_since(self, host: str, paths: list[bytes]) -> dict[bytes, float]:
        """When each of `paths` was last uploaded to `host`, by the ledger's (host, path)."""
        out: dict[bytes, float] = {}
        for path in set(paths):
            row = self._db.execute(
                "SELECT MAX(completed_at) FROM ledger WHERE host = ? AND path = ?", (host, path)
            ).fetchone()
            if row is not None and row[0] is not None:
                out[path] = float(row[0])
        return out


def uploaded_paths(journal: Path, host: str, paths: Sequence[bytes]) -> set[bytes]:
    """Which of `paths` the ledger knows as uploaded to `host`, read-only (a front end's
    own connection: the file browser marks the files it lists)."""
    try:
        db = sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=10)
    except sqlite3.Error:
        return set()
    try:
        return uploaded_among(db, host, paths)
    except sqlite3.Error:
        return set()
    finally:
        db.close()
