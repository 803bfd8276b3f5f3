"""HTTP proxies as the official SDK (requests) finds them: HTTPS_PROXY, HTTP_PROXY, NO_PROXY.

An explicit proxy (`--proxy URL`, config key `proxy`) is used for every request, as a
proxy given to requests is; `--proxy off` ignores the environment. Otherwise the
environment decides per request, with requests' rules: lower-case names win over
upper-case ones, `ALL_PROXY` stands in for a scheme without one, and NO_PROXY lists host
suffixes, `host:port`, IP addresses or CIDR ranges (`*`: none proxied).

To an https origin the transport opens a CONNECT tunnel and TLS inside it, so the proxy
sees the origin's name and port, never the token or the bytes; to an http origin it sends
each request in absolute form through the proxy (which then sees everything, as with any
plain-HTTP client). Only `http://` proxies are supported (requests' default kind).
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import os
import ssl
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from synapse_tui.engine.errors import ConfigError

_CONNECT_HEAD_LIMIT = 16 << 10  # the proxy's answer to CONNECT: a status line and headers
OFF = ("off", "none", "direct")


class ProxyConfigError(ConfigError):
    """A proxy URL that cannot be used (its text never holds the password)."""


@dataclass(frozen=True)
class Proxy:
    """One `http://[user:password@]host:port` proxy."""

    host: str
    port: int
    authorization: str | None = None  # a Proxy-Authorization value, from the URL's userinfo

    @classmethod
    def parse(cls, url: str) -> Proxy:
        text = url.strip()
        if "://" not in text:
            text = "http://" + text  # requests reads `host:port` as an http proxy too
        parts = urlsplit(text)
        if parts.scheme.lower() != "http":
            raise ProxyConfigError(
                f"unsupported proxy scheme {parts.scheme!r}: only http:// proxies are supported"
            )
        try:
            port = parts.port or 80
        except ValueError:
            raise ProxyConfigError("proxy URL has an invalid port") from None
        if not parts.hostname:
            raise ProxyConfigError("proxy URL has no host")
        authorization = None
        if parts.username is not None:
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            authorization = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
        return cls(parts.hostname, port, authorization)

    def __repr__(self) -> str:  # never the credentials
        return f"Proxy({self.host}:{self.port}{', with credentials' if self.authorization else ''})"

    def head_lines(self) -> bytes:
        """Header lines every request to this proxy carries (its credentials, if any)."""
        if self.authorization is None:
            return b""
        return b"Proxy-Authorization: " + self.authorization.encode("latin-1") + b"\r\n"

    async def tunnel(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        host: str,
        port: int,
        tls: ssl.SSLContext,
    ) -> None:
        """CONNECT to `host:port` through this proxy, then TLS with the origin inside the
        tunnel. Raises ConnectionError (the proxy refused) or ssl.SSLError."""
        authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        writer.write(
            f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n".encode("ascii")
            + self.head_lines()
            + b"\r\n"
        )
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            raise ConnectionError(f"proxy {self.host}:{self.port} closed the tunnel") from None
        except asyncio.LimitOverrunError:
            raise ConnectionError(f"proxy {self.host}:{self.port}: answer too long") from None
        status_line = head.split(b"\r\n", 1)[0].decode("latin-1", "replace")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or parts[1] != "200":
            shown = status_line[:80] if status_line.startswith("HTTP/") else "no HTTP answer"
            raise ConnectionError(f"proxy {self.host}:{self.port} refused CONNECT: {shown}")
        await writer.start_tls(tls, server_hostname=host)


@dataclass(frozen=True)
class Route:
    """How one origin is reached through a proxy."""

    proxy: Proxy
    tunnel: bool  # https: CONNECT then TLS; http: requests in absolute form

    async def open(
        self,
        reader: asyncio.StreamReader,
        protocol: asyncio.StreamReaderProtocol,
        host: str,
        port: int,
        tls: ssl.SSLContext | None,
    ) -> asyncio.StreamWriter:
        """Connect to the proxy; for https (`tls`), tunnel to `host:port` and start TLS."""
        loop = asyncio.get_running_loop()
        proxy = self.proxy
        transport, _ = await loop.create_connection(lambda: protocol, proxy.host, proxy.port)
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        try:
            if tls is not None:
                await proxy.tunnel(reader, writer, host, port, tls)
        except BaseException:
            writer.close()
            raise
        return writer

    def forward_form(self, scheme: str, host: str, port: int) -> tuple[bytes, bytes]:
        """(what goes before the path in the request line, extra header lines): the
        absolute form and the proxy's credentials for http; nothing through a tunnel."""
        if self.tunnel:
            return b"", b""
        authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        return f"{scheme}://{authority}".encode("ascii"), self.proxy.head_lines()


class Proxies:
    """Which proxy, if any, each origin goes through; read once from `explicit` or `env`."""

    def __init__(self, explicit: str | None = None, env: Mapping[str, str] | None = None) -> None:
        self._explicit: Proxy | None = None
        self._off = False
        self._by_scheme: dict[str, Proxy] = {}
        self._no_proxy: list[str] = []
        if explicit is not None and explicit.strip():
            if explicit.strip().lower() in OFF:
                self._off = True
            else:
                self._explicit = Proxy.parse(explicit)
            return
        found = _environment_proxies(os.environ if env is None else env)
        for scheme in ("http", "https"):
            url = found.get(scheme) or found.get("all")
            if url:
                self._by_scheme[scheme] = Proxy.parse(url)
        no_proxy = found.get("no", "")
        self._no_proxy = [e for e in no_proxy.replace(" ", "").split(",") if e]

    @property
    def active(self) -> bool:
        return self._explicit is not None or bool(self._by_scheme)

    def route(self, scheme: str, host: str, port: int) -> Route | None:
        if self._off:
            return None
        proxy = self._explicit
        if proxy is None:
            proxy = self._by_scheme.get(scheme)
            if proxy is None or self._bypass(host, port):
                return None
        return Route(proxy, tunnel=scheme == "https")

    def _bypass(self, host: str, port: int) -> bool:
        """requests' `should_bypass_proxies` on NO_PROXY."""
        host = host.lower()
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            address = None
        for entry in self._no_proxy:
            entry = entry.lower()
            if entry == "*":
                return True
            if address is not None:
                try:
                    if address in ipaddress.ip_network(entry, strict=False):
                        return True
                except ValueError:
                    pass
                continue
            name = entry.lstrip(".")
            if not name:
                continue
            if host == name or host.endswith("." + name) or host.endswith(entry):
                return True
            if f"{host}:{port}".endswith(entry):
                return True
        return False


def routing_table(explicit: str | None, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """What routes each request, as lower-case `*_proxy` variables (`Proxies(None, table)`
    routes as `Proxies(explicit, env)` does): an explicit proxy for both schemes and no
    NO_PROXY, `off` none, else `env`'s (None: this process's), ALL_PROXY standing in."""
    if explicit is not None and explicit.strip():
        given = explicit.strip()
        return {} if given.lower() in OFF else {"http_proxy": given, "https_proxy": given}
    found = _environment_proxies(os.environ if env is None else env)
    table: dict[str, str] = {}
    for scheme in ("http", "https"):
        url = found.get(scheme) or found.get("all")
        if url:
            table[f"{scheme}_proxy"] = url
    if table and found.get("no"):
        table["no_proxy"] = found["no"]
    return table


def _environment_proxies(env: Mapping[str, str]) -> dict[str, str]:
    """`scheme -> URL` from `*_proxy` variables, lower-case first, as urllib (and requests)
    read them; `no` holds NO_PROXY."""
    if env is os.environ:
        return urllib.request.getproxies_environment()
    found: dict[str, str] = {}
    for name, value in env.items():  # upper-case first: lower-case then overrides it
        if value and name.lower().endswith("_proxy") and name.isupper():
            found[name[:-6].lower()] = value
    for name, value in env.items():
        if value and name.endswith("_proxy") and name.islower():
            found[name[:-6]] = value
    return found
