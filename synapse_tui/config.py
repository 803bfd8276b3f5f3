"""Settings: command line > environment > ~/.synapse/config.json > synapse-tui's own file."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synapse_tui import paths
from synapse_tui.engine.credentials import Credentials, redact
from synapse_tui.engine.errors import ConfigError

__all__ = ["Settings", "load_settings", "redact", "save_own_config"]
from synapse_tui.units import parse_rate, parse_size

DEFAULT_CHUNK = 50 * 1024 * 1024
DEFAULT_CONCURRENCY = 4
DEFAULT_UPLOAD_NICE = 10  # the dashboard's upload threads, below its UI thread
CONFIG_FILENAME = "config.json"

ENV = {
    "host": "SYNAPSE_HOST",
    "access_token": "SYNAPSE_ACCESS_TOKEN",
    "user_token": "SYNAPSE_PLUGIN_RUN_USER_TOKEN",
    "tenant": "SYNAPSE_PLUGIN_RUN_TENANT",
    "upload_nice": "SYNAPSE_TUI_UPLOAD_NICE",
}
SECRET_KEYS = ("access_token", "user_token", "tenant")
SDK_KEYS = ("host", *SECRET_KEYS)  # what the official SDK's config file may set for us


@dataclass
class Settings:
    """Everything the engine and the front ends need, resolved once."""

    host: str | None = None
    credentials: Credentials = field(default_factory=Credentials)
    state_dir: Path = field(default_factory=paths.state_dir)
    chunk_size: int = DEFAULT_CHUNK
    concurrency: int = DEFAULT_CONCURRENCY
    bwlimit: float | None = None
    insecure: bool = False
    ca_bundle: str | None = None
    proxy: str | None = None  # an HTTP proxy URL or "off"; None: the environment's (as the SDK)
    # The engine's, with proxy None: the proxy variables of the command that configured it
    # last (engine/proxy.py routing_table); None: the engine's own environment's.
    proxy_env: dict[str, str] | None = None
    retries: int = 12
    strategy: str = "auto"  # auto | presigned | chunked
    theme: str | None = None
    upload_nice: int = DEFAULT_UPLOAD_NICE
    sources: dict[str, str] = field(default_factory=dict)  # key -> where it came from

    @property
    def verify(self) -> bool | str:
        if self.insecure:
            return False
        return self.ca_bundle or True

    def __repr__(self) -> str:  # credentials have their own redacting repr
        return f"Settings(host={self.host!r}, credentials={self.credentials!r}, ...)"


def own_config_file() -> Path:
    return paths.config_dir() / CONFIG_FILENAME


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a JSON object")
    return data


def load_settings(
    cli: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Resolve settings. `cli` holds values given on the command line (None = not given)."""
    cli = {k: v for k, v in (cli or {}).items() if v is not None}
    env = os.environ if env is None else env
    sdk = _read_json(paths.sdk_config_file())
    own = _read_json(own_config_file())
    layers: list[tuple[str, Mapping[str, Any]]] = [
        ("command line", cli),
        ("environment", {k: env[v] for k, v in ENV.items() if env.get(v)}),
        (str(paths.sdk_config_file()), {k: sdk[k] for k in SDK_KEYS if sdk.get(k)}),
        (str(own_config_file()), own),
    ]
    settings = Settings()

    def pick(key: str) -> Any:
        for name, layer in layers:
            if layer.get(key) not in (None, ""):
                settings.sources[key] = name
                return layer[key]
        return None

    host = pick("host")
    if host is not None:
        host = str(host).strip()
        if not host.startswith(("http://", "https://")):
            raise ConfigError(f"host must start with http:// or https://: {host}")
        settings.host = host.rstrip("/")
    settings.credentials = Credentials(
        access_token=pick("access_token"), user_token=pick("user_token"), tenant=pick("tenant")
    )
    settings.state_dir = paths.state_dir(cli.get("state_dir"))
    try:
        if (chunk := pick("chunk_size")) is not None:
            settings.chunk_size = parse_size(str(chunk))
        if (conc := pick("concurrency")) is not None:
            settings.concurrency = int(conc)
        if (bw := pick("bwlimit")) is not None:
            settings.bwlimit = parse_rate(str(bw))
        if (retries := pick("retries")) is not None:
            settings.retries = int(retries)
        if (nice := pick("upload_nice")) is not None:
            settings.upload_nice = int(nice)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if settings.credentials.user_token and not settings.credentials.tenant:
        raise ConfigError(
            "a user token needs a tenant: give --tenant (or set SYNAPSE_PLUGIN_RUN_TENANT)"
        )
    if settings.retries < 0:
        raise ConfigError("retries must be 0 or more")
    if settings.chunk_size < 1:
        raise ConfigError("chunk size must be at least 1 byte")
    if not 1 <= settings.concurrency <= 64:
        raise ConfigError("concurrency must be between 1 and 64")
    if not 0 <= settings.upload_nice <= 19:
        raise ConfigError("upload_nice must be between 0 and 19")
    if (strategy := pick("strategy")) is not None:
        if strategy not in ("auto", "presigned", "chunked"):
            raise ConfigError(f"strategy must be auto, presigned or chunked, not {strategy!r}")
        settings.strategy = str(strategy)
    settings.insecure = bool(pick("insecure"))
    settings.ca_bundle = pick("ca_bundle")
    settings.proxy = pick("proxy")
    if settings.proxy is not None:
        from synapse_tui.engine.proxy import Proxies

        Proxies(str(settings.proxy))  # a bad URL: one line now, not at the first request
    settings.theme = pick("theme")
    return settings


def save_own_config(values: Mapping[str, Any]) -> Path:
    """Merge `values` into synapse-tui's own config file (0600, written atomically)."""
    path = own_config_file()
    current = _read_json(path)
    for key, value in values.items():
        if value in (None, ""):
            current.pop(key, None)
        else:
            current[key] = value
    paths.write_private(path, (json.dumps(current, indent=2) + "\n").encode())
    return path


def require_backend(settings: Settings) -> None:
    """Raise ConfigError when no backend or no credentials are configured."""
    if not settings.host:
        raise ConfigError(
            "no backend configured: give --host and --token, set SYNAPSE_HOST and "
            "SYNAPSE_ACCESS_TOKEN, or run `synapse-tui serve` for a local one"
        )
    if not settings.credentials.present:
        raise ConfigError("no credentials: give --token (or --user-token with --tenant)")
