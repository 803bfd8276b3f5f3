"""Settings of the embedded backend (`ServerConfig`), validated once at construction."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_EXPIRE_AFTER = 86400.0
DEFAULT_BODY_TIMEOUT = 60.0
DEFAULT_MULTIPART = 100 << 20  # presigned: larger files go multipart, in parts of this size


@dataclass
class ServerConfig:
    """What `create_app` and `BackgroundServer` need to serve uploads.

    `clock` returns the wall-clock time in seconds; tests inject a fake one to
    drive expiry without sleeping. `body_timeout` is how long a request body may
    send nothing before it is answered 408 and its upload freed.
    """

    root: Path
    tokens: list[str]
    max_bytes: int | None = None
    expire_after: float = DEFAULT_EXPIRE_AFTER
    prefix: str = ""
    # (name, specs): a spec is a `specs.FileSpec` or, the old form, just its name
    collections: list[tuple[str, list[Any]]] = field(default_factory=list)
    body_timeout: float = DEFAULT_BODY_TIMEOUT
    storage: str | None = None  # s3://BUCKET[/PREFIX]: presigned uploads go there
    s3_endpoint: str | None = None
    multipart_threshold: int = DEFAULT_MULTIPART
    part_size: int = DEFAULT_MULTIPART
    clock: Callable[[], float] = field(default=time.time, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        self.tokens = list(self.tokens)
        if not self.tokens or not all(isinstance(t, str) and t for t in self.tokens):
            raise ValueError("at least one non-empty token is required")
        if self.max_bytes is not None and self.max_bytes < 0:
            raise ValueError("max_bytes must not be negative")
        if not self.expire_after > 0:
            raise ValueError("expire_after must be positive")
        if not self.body_timeout > 0:
            raise ValueError("body_timeout must be positive")
        self.prefix = normalize_prefix(self.prefix)
        from synapse_tui.server.specs import normalize

        if self.storage is not None:
            from synapse_tui.server.storage_s3 import S3_MIN_PART, StorageSpec

            StorageSpec.parse(self.storage)
            if self.part_size < S3_MIN_PART or self.multipart_threshold < 0:
                raise ValueError("part size must be at least 5 MiB (S3's smallest part)")
        names = [name for name, _ in self.collections]
        if len(set(names)) != len(names):
            raise ValueError("collection names must be unique")
        normalized: list[tuple[str, list[Any]]] = []
        for name, specs in self.collections:
            try:
                if not name:
                    raise ValueError("needs a name")
                normalized.append((name, list(normalize(list(specs)))))
            except ValueError as exc:
                raise ValueError(f"collection {name!r} {exc}") from None
        self.collections = normalized


def normalize_prefix(prefix: str) -> str:
    """`api/`, `/api/` and `/api` all mean `/api`; `/` and `` mean no prefix."""
    stripped = prefix.strip().strip("/")
    if not stripped:
        return ""
    if any(c in stripped for c in "?#") or "//" in stripped:
        raise ValueError(f"invalid prefix {prefix!r}")
    return "/" + stripped
