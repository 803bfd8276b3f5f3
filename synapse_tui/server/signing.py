"""Time-limited signed download URLs of data files (the SDK fetches them without a token).

The signature is an HMAC-SHA256, with a secret kept in the root (`secret`, 0600, made on
first start), of the data file's id and the expiry: it opens that one file until then.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path
from urllib.parse import quote

URL_TTL = 3600  # seconds a signed URL stays valid
SECRET_BYTES = 32


def load_secret(root: Path) -> bytes:
    """The root's signing secret, created (0600, atomically) when missing."""
    path = Path(root) / "secret"
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        data = b""
    if len(data) >= SECRET_BYTES:
        return data
    fresh = secrets.token_bytes(SECRET_BYTES)
    tmp = path.with_name(f"secret.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, fresh)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return fresh


class Signer:
    """Signs and checks `data_files/<id>/download/<name>?expires=..&signature=..` URLs."""

    def __init__(self, secret: bytes, ttl: int = URL_TTL) -> None:
        self._secret = secret
        self.ttl = ttl

    def signature(self, file_id: int, expires: int) -> str:
        message = f"data_file:{file_id}:{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def url(self, api_base: str, file_id: int, name: str, now: float) -> str:
        # Expiry rounded up to the minute: a page of units gets the same URLs within it.
        expires = (int(now) // 60 + 1) * 60 + self.ttl
        leaf = name.replace("\\", "/").rsplit("/", 1)[-1] or "file"
        return (
            f"{api_base}/data_files/{file_id}/download/{quote(leaf, safe='')}"
            f"?expires={expires}&signature={self.signature(file_id, expires)}"
        )

    def valid(self, file_id: int, expires: str | None, signature: str | None, now: float) -> bool:
        if not expires or not expires.isdigit() or not signature or len(signature) > 128:
            return False
        if int(expires) < now:
            return False
        return hmac.compare_digest(self.signature(file_id, int(expires)), signature)
