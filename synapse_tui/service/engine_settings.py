"""The transfer settings a command names that a running engine holds otherwise."""

from __future__ import annotations

import os
from typing import Any

from synapse_tui.config import Settings
from synapse_tui.engine.errors import ConfigError
from synapse_tui.engine.proxy import Proxies
from synapse_tui.service.spawn import proxy_id

# Compared with the engine's status; a command that does not name one keeps the engine's.
KEYS = ("strategy", "retries", "insecure", "ca_bundle")
STRATEGIES = ("auto", "presigned", "chunked")


def resolved(path: str | None) -> str | None:
    """A CA bundle as one file: the engine runs in "/", and two spellings (relative,
    through a link) of one file are the same bundle."""
    if not path:
        return None
    return os.path.realpath(os.path.expanduser(path))


def differing(status: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """{key: this command's value} for each setting it names (command line, environment or
    config file) that the engine holds otherwise; the CA bundle by resolved path."""
    out: dict[str, Any] = {}
    for key in KEYS:
        if key not in settings.sources:
            continue
        mine, theirs = getattr(settings, key), status.get(key)
        if key == "ca_bundle":
            mine, theirs = resolved(mine), resolved(theirs)
        if mine != theirs:
            out[key] = mine
    return out


def _tls(insecure: object) -> str:
    return "--insecure" if insecure else "TLS verification"


def proxy_env(given: object) -> dict[str, str] | None:
    """A client's proxy variables (engine/proxy.py routing_table), checked as the engine
    will read them: a bad URL is one line now, not a manager that cannot be built."""
    if given is None:
        return None
    names = ("http_proxy", "https_proxy", "no_proxy")
    if not isinstance(given, dict) or not all(
        k in names and isinstance(v, str) for k, v in given.items()
    ):
        raise ConfigError(f"proxy_env holds only {', '.join(names)}, as text")
    Proxies(None, given)  # ProxyConfigError: a ConfigError, without the URL's password
    return dict(given)


def describe(status: dict[str, Any], differ: dict[str, Any], me: str = "this command") -> list[str]:
    """One phrase a setting, for the refusal line (no secret: none of these holds one)."""
    phrases = []
    for key, mine in differ.items():
        theirs = status.get(key)
        if key == "insecure":
            phrases.append(f"{_tls(theirs)} ({me}: {_tls(mine)})")
        elif key == "ca_bundle":
            phrases.append(
                f"another --ca-bundle, compared by resolved path ({resolved(theirs) or 'none'}; "
                f"{me}: {mine or 'none'})"
            )
        else:
            phrases.append(f"--{key} {theirs} ({me}: --{key} {mine})")
    return phrases


def attach_warning(status: dict[str, Any], settings: Settings) -> str | None:
    """The dashboard's line when the engine it attached to routes otherwise than its own
    settings would (the proxy, by digest) or holds another value of one it names: the
    dashboard does not reconfigure a running engine, its uploads go the engine's way."""
    phrases = ["another proxy"] if status.get("proxy") != proxy_id(settings.proxy) else []
    phrases += describe(status, differing(status, settings), "this dashboard")
    if not phrases:
        return None
    return (
        f"the engine of this state folder uses {' and '.join(phrases)}: the uploads go its"
        " way; stop it (`synapse-tui engine stop`) or use another --state-dir"
    )


def filters_for(status: dict[str, Any], args: Any) -> list[list[str]]:
    """The command's --include/--exclude for the engine whose `status` is given. An engine
    started by an older version would ignore them and take every file: refused, one line."""
    from synapse_tui.engine.filters import PathFilter

    rules = getattr(args, "filters", None) or []
    if not rules:
        return []
    wire = PathFilter(rules).to_wire()  # a bad pattern: ConfigError, before the engine's
    if "filters" not in (status.get("features") or []):
        raise ConfigError(
            "the running engine is older than --include/--exclude: stop it "
            "(`synapse-tui engine stop`) and run this again"
        )
    return wire
