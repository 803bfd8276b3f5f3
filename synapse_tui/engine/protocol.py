"""The Synapse chunked-upload wire protocol on httpx: requests, answers and error mapping."""

# Credentials and redact live in credentials.py (no httpx), re-exported here.

from __future__ import annotations

import email.utils
import importlib.util
import json
import os
import secrets
import ssl
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from synapse_tui import __version__
from synapse_tui.engine.credentials import Credentials, redact
from synapse_tui.engine.errors import (
    AlreadyComplete,
    AuthError,
    ChecksumMismatch,
    OffsetMismatch,
    OriginError,
    OutcomeUnknown,
    ProtocolError,
    ServerRejected,
    SynapseError,
    TLSError,
    TransientError,
    UploadGone,
)
from synapse_tui.engine.transport import LeanTransport

if importlib.util.find_spec("sniffio") is None:
    # httpcore runs `import sniffio` on every request and lock; without the package each
    # attempt walks sys.path (a tenth of the client's CPU with many small files). None in
    # sys.modules makes the import fail at once, with the same outcome (asyncio).
    sys.modules.setdefault("sniffio", None)  # type: ignore[arg-type]

# Retry-After values above this are capped: a server asking for an hour is not obeyed blindly.
MAX_RETRY_AFTER = 300.0
USER_AGENT = f"synapse-tui/{__version__}"


@dataclass(frozen=True)
class Timeouts:
    """Per-request timeouts in seconds; finalize gets a read timeout that grows with size."""

    connect: float = 15.0
    read: float = 120.0
    write: float = 120.0
    pool: float = 60.0
    finalize_base: float = 300.0
    finalize_rate: float = 20 * 1024 * 1024  # bytes/s the server is assumed to re-hash at least

    def default(self) -> httpx.Timeout:
        return httpx.Timeout(connect=self.connect, read=self.read, write=self.write, pool=self.pool)

    def finalize(self, size: int) -> httpx.Timeout:
        read = self.finalize_base + size / self.finalize_rate
        return httpx.Timeout(connect=self.connect, read=read, write=self.write, pool=self.pool)


@dataclass(frozen=True)
class UploadInfo:
    """The server's view of one chunked upload."""

    id: str
    url: str
    offset: int
    status: int
    filename: str | None
    completed_at: str | None
    checksum: str | None
    raw: dict[str, Any]

    @property
    def complete(self) -> bool:
        return self.status == 2 or bool(self.completed_at)

    @classmethod
    def parse(cls, data: Any) -> UploadInfo:
        if not isinstance(data, dict):
            raise ProtocolError(f"server answered {type(data).__name__}, expected a JSON object")
        try:
            offset = data["offset"]
            upload_id = data["id"]
            url = data["url"]
            if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
                raise TypeError("offset")
            if not isinstance(url, str) or not isinstance(upload_id, str | int):
                raise TypeError("url/id")
        except (KeyError, TypeError) as exc:
            raise ProtocolError(f"server answer lacks a valid {exc.args[0]!s}") from None
        status = data.get("status")
        return cls(
            id=str(upload_id),
            url=url,
            offset=offset,
            status=status if isinstance(status, int) else 0,
            filename=data.get("filename"),
            completed_at=data.get("completed_at"),
            checksum=data.get("checksum") if isinstance(data.get("checksum"), str) else None,
            raw=data,
        )


def join_url(root: str, path: str) -> str:
    """`root` with a path prefix + a relative API path, as PROTOCOL.md says."""
    return root.rstrip("/") + "/" + path.lstrip("/")


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or (443 if scheme == "https" else 80)
    return scheme, (parts.hostname or "").lower(), port


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), capped."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds:  # NaN
        return None
    return max(0.0, min(seconds, MAX_RETRY_AFTER))


def _detail(response: httpx.Response) -> tuple[str, dict[str, Any]]:
    """The server's message for a failed request, and the JSON body if there is one."""
    try:
        data = response.json()
    except ValueError:
        text = response.text.strip().replace("\n", " ")
        return (text[:300] or response.reason_phrase or f"HTTP {response.status_code}"), {}
    if isinstance(data, dict):
        detail = data.get("detail", data)
        return _flatten(detail)[:300], data
    if isinstance(data, list) and data:
        return str(data[0])[:300], {}
    return f"HTTP {response.status_code}", {}


def _flatten(detail: Any) -> str:
    """DRF error bodies as one line: {"file": ["The submitted file is empty."]} -> "file: ..."."""
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):
        return "; ".join(_flatten(d) for d in detail)
    if isinstance(detail, dict):
        return "; ".join(f"{k}: {_flatten(v)}" for k, v in detail.items())
    return json.dumps(detail)


def raise_for_answer(response: httpx.Response) -> None:
    """Map a non-2xx answer to the engine's error tree (see errors.py)."""
    code = response.status_code
    if 200 <= code < 300:
        return
    message, data = _detail(response)
    if 300 <= code < 400:
        raise ProtocolError(f"server redirected ({code}); redirects are not followed")
    if code in (401, 403):
        raise AuthError(f"authentication failed ({code}): {message}")
    if code in (404, 410):
        raise UploadGone(
            f"upload {'expired' if code == 410 else 'not found'}: {message}", status=code
        )
    if code == 408 or code == 429 or (code >= 500 and code != 507):
        raise TransientError(
            f"server busy ({code}): {message}",
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )
    if code == 400:
        lowered = message.lower()
        if "offsets do not match" in lowered:
            expected = data.get("expected_offset", data.get("offset"))
            provided = data.get("provided_offset", -1)
            if isinstance(expected, int):
                raise OffsetMismatch(expected, provided if isinstance(provided, int) else -1)
        if "already been marked" in lowered and "complete" in lowered:
            raise AlreadyComplete(message)
        if "checksum does not match" in lowered:
            raise ChecksumMismatch("server says the checksum does not match")
    raise ServerRejected(f"server refused ({code}): {message}", status=code)


BodyFactory = Callable[[], AsyncIterator[bytes]]


MAX_KNOWN_URLS = 256  # parsed URLs a client keeps (uploads of big files reuse theirs)


class ProtocolClient:
    """One configured backend: origin-checked, authenticated, with explicit timeouts."""

    def __init__(
        self,
        host: str,
        credentials: Credentials,
        *,
        verify: bool | str = True,
        timeouts: Timeouts | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        max_connections: int = 32,
    ) -> None:
        if urlsplit(host).scheme not in ("http", "https"):
            raise ValueError(f"host must start with http:// or https://: {host!r}")
        self.root = host.rstrip("/")
        self.credentials = credentials
        self.timeouts = timeouts or Timeouts()
        self._origin = _origin(self.root)
        root = urlsplit(self.root)
        # A URL that starts with this (the root's scheme and authority, verbatim, then the
        # "/" that ends the authority) has the root's origin without being parsed.
        self._origin_prefix = f"{root.scheme}://{root.netloc}/"
        if transport is None:
            if os.environ.get("SYNAPSE_TUI_HTTPCORE"):
                limits = httpx.Limits(
                    max_connections=max_connections, max_keepalive_connections=max_connections
                )
                transport = httpx.AsyncHTTPTransport(verify=verify, limits=limits, trust_env=False)
            else:
                transport = LeanTransport(verify=verify, max_connections=max_connections)
        # Requests go straight to the transport, not through an httpx.AsyncClient: the
        # engine uses none of its redirect, cookie, auth or event-hook machinery, and that
        # layer cost as much CPU per request as the transport itself (many small files).
        self._transport = transport
        self._urls: dict[str, httpx.URL] = {}
        self._default_timeout = self.timeouts.default().as_dict()
        # What httpx.AsyncClient sent by default (answers in gzip or deflate are decoded).
        self._base_headers = {
            "Accept": "*/*",
            "Accept-Encoding": "gzip, deflate",
            "User-Agent": USER_AGENT,
        }

    async def aclose(self) -> None:
        await self._transport.aclose()

    # -- addressing -------------------------------------------------------------------------

    def url(self, path: str) -> str:
        return join_url(self.root, path)

    def check_origin(self, url: str) -> str:
        """Refuse a server-given URL outside the configured origin: it never gets the token."""
        if url.startswith(self._origin_prefix):  # every upload URL of a plain server
            return url
        try:
            origin = _origin(url)
        except ValueError:  # a port that is not a number, or out of range
            raise OriginError(
                "server gave a URL with an invalid port; refusing to send credentials there"
            ) from None
        if origin != self._origin:
            scheme, host, port = origin
            raise OriginError(
                f"server gave a URL outside the configured origin ({scheme}://{host}:{port}); "
                "refusing to send credentials there"
            )
        return url

    def _checked_url(self, url: str) -> httpx.URL:
        """`url` parsed, once its origin is checked. Kept: every small file goes to the same
        URL, and parsing it was half the cost of building each request."""
        parsed = self._urls.get(url)
        if parsed is None:
            self.check_origin(url)
            if len(self._urls) >= MAX_KNOWN_URLS:
                self._urls.clear()
            parsed = self._urls[url] = httpx.URL(url)
        return parsed

    # -- requests ---------------------------------------------------------------------------

    async def _send(
        self,
        method: str,
        url: str,
        *,
        content: Any = None,
        headers: dict[str, str] | None = None,
        data: dict[str, str] | None = None,
        json_body: Any = None,
        timeout: httpx.Timeout | None = None,
        idempotent: bool = False,
    ) -> httpx.Response:
        target = self._checked_url(url)
        all_headers = {**self._base_headers, **self.credentials.headers()}
        if headers:
            all_headers.update(headers)
        # A body of pieces and known length (Content-Length set) goes in as a stream as it
        # is: httpx's wrapping of an async iterator was 7% of the client's instructions
        # per small file (callgrind). httpx then adds no headers, so Host is set here.
        stream = None
        if isinstance(content, AsyncIterator) and "Content-Length" in all_headers:
            stream = _Stream(content)
            all_headers.setdefault("Host", target.netloc.decode("ascii"))
        try:
            request = httpx.Request(
                method,
                target,
                headers=all_headers,
                content=None if stream is not None else content,
                stream=stream,
                data=data,
                json=json_body,
                extensions={
                    "timeout": self._default_timeout if timeout is None else timeout.as_dict()
                },
            )
            response = await self._transport.handle_async_request(request)
            response.request = request
            try:
                await response.aread()
            finally:
                await response.aclose()
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            if _tls_refusal(exc):  # never retried, never downgraded to plain HTTP
                raise TLSError(f"TLS failure with {self.root}: {_exc_text(exc)}") from None
            raise TransientError(f"cannot connect to {self.root}: {_exc_text(exc)}") from None
        except httpx.TransportError as exc:
            kind = TransientError if idempotent else OutcomeUnknown
            raise kind(f"{method} interrupted: {_exc_text(exc)}") from None
        try:
            raise_for_answer(response)
        except SynapseError as exc:  # a server may echo the token back in its message
            secrets = self.credentials.secrets()
            exc.args = tuple(redact(a, secrets) if isinstance(a, str) else a for a in exc.args)
            raise
        return response

    @staticmethod
    def _json(response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            raise ProtocolError(
                f"server answered {response.status_code} with a body that is not JSON"
            ) from None

    def _upload_info(self, response: httpx.Response) -> UploadInfo:
        info = UploadInfo.parse(self._json(response))
        self.check_origin(info.url)
        return info

    async def put_chunk(
        self,
        url: str | None,
        filename: str,
        body: BodyFactory,
        start: int,
        length: int,
        total: int,
    ) -> UploadInfo:
        """PUT one chunk: `url` None creates the upload (first chunk, start 0)."""
        target = url or self.url("chunked_upload/")
        stream, content_length, content_type = multipart_body(filename, body, length)
        headers = {
            "Content-Range": f"bytes {start}-{start + length - 1}/{total}",
            "Content-Type": content_type,
            "Content-Length": str(content_length),
        }
        response = await self._send("PUT", target, content=stream, headers=headers)
        return self._upload_info(response)

    async def upload_whole(
        self, filename: str, body: BodyFactory, length: int, md5: str
    ) -> UploadInfo:
        """POST a whole file with its MD5 in one request (used for empty files)."""
        stream, content_length, content_type = multipart_body(
            filename, body, length, extra={"md5": md5}
        )
        headers = {"Content-Type": content_type, "Content-Length": str(content_length)}
        response = await self._send(
            "POST", self.url("chunked_upload/"), content=stream, headers=headers
        )
        return self._upload_info(response)

    async def finalize(self, url: str, md5: str, size: int) -> UploadInfo:
        response = await self._send(
            "POST", url, data={"md5": md5}, timeout=self.timeouts.finalize(size)
        )
        return self._upload_info(response)

    async def state(self, url: str) -> UploadInfo:
        response = await self._send("GET", url, idempotent=True)
        return self._upload_info(response)

    async def ping(self) -> None:
        """Reach the backend and check the credentials, cheaply: a GET of an upload id that
        cannot exist answers 404 when all is well, 401/403 when the token is refused."""
        try:
            await self._send(
                "GET",
                self.url("chunked_upload/00000000-0000-0000-0000-000000000000/"),
                idempotent=True,
            )
        except UploadGone:
            return

    async def list_uploads(self) -> list[UploadInfo]:
        response = await self._send("GET", self.url("chunked_upload/"), idempotent=True)
        data = self._json(response)
        if isinstance(data, dict) and isinstance(data.get("results"), list):
            data = data["results"]
        if not isinstance(data, list):
            raise ProtocolError("upload list is not a JSON list")
        out = []
        for item in data:
            try:
                out.append(UploadInfo.parse(item))
            except ProtocolError:
                continue
        return out

    async def get_json(self, path: str, params: dict[str, str] | None = None) -> Any:
        url = self.url(path)
        if params:
            url = str(httpx.URL(url, params=params))
        return self._json(await self._send("GET", url, idempotent=True))

    async def post_json(self, path: str, body: Any, timeout: httpx.Timeout | None = None) -> Any:
        return self._json(await self._send("POST", self.url(path), json_body=body, timeout=timeout))


class _Stream(httpx.AsyncByteStream):
    """A request body: an async iterator of bytes, sent once."""

    __slots__ = ("_pieces",)

    def __init__(self, pieces: AsyncIterator[bytes]) -> None:
        self._pieces = pieces

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._pieces


def _tls_refusal(exc: BaseException) -> bool:
    """Whether a connect error comes from TLS refusing (a certificate that does not verify,
    a peer that does not speak TLS), not from the network cutting the handshake (EOF)."""
    transient = (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError)
    cause: BaseException | None = exc
    for _ in range(8):
        if cause is None:
            return False
        if isinstance(cause, ssl.SSLError):
            return not isinstance(cause, transient)
        cause = cause.__cause__ or cause.__context__
    return False


def _exc_text(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\r", " ").replace("\n", " ")


def multipart_body(
    filename: str, body: BodyFactory, length: int, *, extra: dict[str, str] | None = None
) -> tuple[AsyncIterator[bytes], int, str]:
    """A streamed multipart/form-data body: text field `filename`, then the file part.

    The file bytes come from `body()` (read from disk piece by piece); the total length is
    known up front so the request carries Content-Length, never chunked encoding.
    """
    boundary = "synapse-tui-" + secrets.token_hex(12)
    head = bytearray()
    fields = {"filename": filename, **(extra or {})}
    for name, value in fields.items():
        head += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            + value.encode("utf-8")
            + b"\r\n"
        )
    head += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="{_quote(filename)}"\r\nContent-Type: application/octet-stream\r\n\r\n'
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    head_bytes = bytes(head)

    async def stream() -> AsyncIterator[bytes]:
        yield head_bytes
        async for piece in body():
            yield piece
        yield tail

    return (
        stream(),
        len(head_bytes) + length + len(tail),
        f"multipart/form-data; boundary={boundary}",
    )
