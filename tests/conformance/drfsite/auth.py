"""Token authentication for the test site.

Accepts ``Synapse-Access-Token: Token <t>`` (checked first) or
``Authorization: Token <t>``; tokens map to usernames via the ``DRFSITE_TOKENS``
environment variable (``"tok1:alice,tok2:bob"``). Users are created on first use.
"""

from __future__ import annotations

import os
from typing import Any

from django.contrib.auth import get_user_model
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed


def token_map() -> dict[str, str]:
    tokens: dict[str, str] = {}
    for item in os.environ.get("DRFSITE_TOKENS", "").split(","):
        token, sep, username = item.strip().partition(":")
        if sep and token and username:
            tokens[token] = username
    return tokens


class EnvTokenAuthentication(BaseAuthentication):
    keyword = "Token"

    def authenticate(self, request: Any) -> tuple[Any, str] | None:
        raw = request.META.get("HTTP_SYNAPSE_ACCESS_TOKEN") or request.META.get(
            "HTTP_AUTHORIZATION"
        )
        if not raw:
            return None  # -> NotAuthenticated -> 401 thanks to authenticate_header()
        parts = raw.split()
        if len(parts) != 2 or parts[0] != self.keyword:
            raise AuthenticationFailed("Invalid token header.")
        username = token_map().get(parts[1])
        if username is None:
            raise AuthenticationFailed("Invalid token.")
        user, _ = get_user_model().objects.get_or_create(username=username)
        return user, parts[1]

    def authenticate_header(self, request: Any) -> str:
        return self.keyword
