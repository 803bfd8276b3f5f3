"""Credentials and redaction: light enough for every command to import (no httpx)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Credentials:
    """An access token, or a user token with a tenant. Never printed: see __repr__."""

    access_token: str | None = None
    user_token: str | None = None
    tenant: str | None = None

    def __repr__(self) -> str:
        kinds = [k for k in ("access_token", "user_token", "tenant") if getattr(self, k)]
        return f"Credentials({', '.join(kinds) or 'none'}: <hidden>)"

    __str__ = __repr__

    @property
    def present(self) -> bool:
        return bool(self.access_token or self.user_token)

    def headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        if self.access_token:
            headers["Synapse-Access-Token"] = f"Token {self.access_token}"
        if self.user_token:
            headers["Authorization"] = f"Token {self.user_token}"
        if self.tenant:
            headers["Synapse-Tenant"] = f"Token {self.tenant}"
        return headers

    def secrets(self) -> list[str]:
        """The secret strings, for redaction of anything shown to a person."""
        return [s for s in (self.access_token, self.user_token, self.tenant) if s]


def redact(text: str, secrets: list[str]) -> str:
    """Replace every secret in `text` with a fixed marker (for anything shown or logged)."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "<redacted>")
    return text
