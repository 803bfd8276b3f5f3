"""Token authentication: `Synapse-Access-Token: Token <t>` or `Authorization: Token <t>`.

Tokens are compared as SHA-256 digests with `hmac.compare_digest`, checking every
configured token (no early exit). The owner key stored in the database is a
SHA-256 of token and tenant, never the token itself.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from synapse_tui.server.errors import ApiError

NOT_PROVIDED = "Authentication credentials were not provided."
INVALID = "Invalid token."
_CHALLENGE = {"WWW-Authenticate": "Token"}


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


def _token_of(value: str | None) -> str | None:
    """The credential of `Token <credential>`; None when the header is absent or another scheme."""
    if value is None:
        return None
    parts = value.split()
    if not parts or parts[0].lower() != "token":
        return None
    if len(parts) != 2:
        raise ApiError(401, "Invalid token header. No credentials provided.", _CHALLENGE)
    return parts[1]


class Authenticator:
    """Maps request headers to an owner key, or raises a 401 ApiError."""

    def __init__(self, tokens: list[str]) -> None:
        self._digests = [_digest(t) for t in tokens]

    def owner_key(self, headers: Mapping[str, str]) -> str:
        token = _token_of(headers.get("synapse-access-token"))
        if token is None:
            token = _token_of(headers.get("authorization"))
        if token is None:
            raise ApiError(401, NOT_PROVIDED, _CHALLENGE)
        provided = _digest(token)
        ok = False
        for known in self._digests:
            ok |= hmac.compare_digest(provided, known)
        if not ok:
            raise ApiError(401, INVALID, _CHALLENGE)
        tenant = headers.get("synapse-tenant", "").strip()
        if tenant[:6].lower() == "token ":
            tenant = tenant[6:].strip()
        return owner_key(token, tenant)


def owner_key(token: str, tenant: str = "") -> str:
    """What the database knows of a credential: a SHA-256 of token and tenant."""
    return hashlib.sha256(f"{token}\x00{tenant}".encode()).hexdigest()
