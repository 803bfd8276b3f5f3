"""The Synapse chunked-upload wire protocol on httpx: requests, deadlines and upload lists."""

# Credentials and redact live in credentials.py (no httpx), UploadInfo and the error mapping
# in answers.py; both are re-exported here.

from __future__ import annotations

import asyncio
import secrets
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

import httpx

from synapse_tui import __version__
from synapse_tui.engine.answers import (
    MAX_RETRY_AFTER,
    UploadInfo,
    parse_retry_after,
    raise_for_answer,
    server_time,
)
from synapse_tui.engine.credentials import Credentials, redact
from synapse_tui.engine.errors import (
    AuthError,
    ConfigError,
    OriginError,
    OutcomeUnknown,
    ProtocolError,
    SynapseError,
    TLSError,
    TransientError,
    UploadGone,
)
from synapse_tui.engine.names import escape_text
from synapse_tui.engine.proxy import Proxies
from synapse_tui.engine.transport import AnswerTooLarge, LeanTransport

__all__ = [
    "MAX_RETRY_AFTER",
    "Credentials",
    "ProtocolClient",
    "Timeouts",
    "UploadInfo",
    "join_url",
    "parse_retry_after",
    "raise_for_answer",
    "redact",
]

USER_AGENT = f"synapse-tui/{__version__}"
# Recovery reads the caller's upload list; a paginated one is followed this far at most.
MAX_LIST_PAGES = 50
MAX_LIST_ITEMS = 10_000


@dataclass(frozen=True)
class Timeouts:
    """Timeouts in seconds: per operation (connect, each read, each write, a pool slot) and
    per request (an overall deadline, so a drip-fed answer cannot hold a request forever;
    a chunk's PUT has the uploader's own deadlines). Finalize's grow with the file's size."""

    connect: float = 15.0
    read: float = 120.0
    write: float = 120.0
    pool: float = 60.0
    finalize_base: float = 300.0
    finalize_rate: float = 20 * 1024 * 1024  # bytes/s the server is assumed to re-hash at least
    check: float = 20.0  # the start-up check (ping), whole
    request: float = 300.0  # any other request but a chunk's PUT and finalize, whole

    def default(self) -> httpx.Timeout:
        return httpx.Timeout(connect=self.connect, read=self.read, write=self.write, pool=self.pool)

    def finalize_deadline(self, size: int) -> float:
        return self.finalize_base + size / self.finalize_rate

    def finalize(self, size: int) -> httpx.Timeout:
        read = self.finalize_deadline(size)
        return httpx.Timeout(connect=self.connect, read=read, write=self.write, pool=self.pool)


def join_url(root: str, path: str) -> str:
    """`root` with a path prefix + a relative API path, as docs/protocol.md says."""
    return root.rstrip("/") + "/" + path.lstrip("/")


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or (443 if scheme == "https" else 80)
    return scheme, (parts.hostname or "").lower(), port


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
        proxy: str | None = None,
        proxy_env: Mapping[str, str] | None = None,
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
            # Proxies as the official SDK finds them (in `proxy_env`, else this process's
            # environment), or `proxy` (engine/proxy.py).
            proxies = Proxies(proxy, proxy_env)
            transport = LeanTransport(
                verify=verify,
                max_connections=max_connections,
                proxies=proxies if proxies.active else None,
            )
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
        # Awaited before each request: the engine's journal commits what must precede it
        # (Journal.durable), so no request outruns the write that makes it recoverable.
        self.barrier: Callable[[], Awaitable[None]] | None = None

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
        what: str,
        deadline: float | None,
        content: Any = None,
        headers: dict[str, str] | None = None,
        data: dict[str, str] | None = None,
        json_body: Any = None,
        timeout: httpx.Timeout | None = None,
        idempotent: bool = False,
        anonymous: bool = False,
    ) -> httpx.Response:
        """One request; `what` names it in errors ("finalize", "start-up check"), and
        `deadline` bounds it whole: connect, send, and the answer to its last byte."""
        if self.barrier is not None:  # outside `deadline`: the request has not started
            await self.barrier()
        target = self._checked_url(url)
        all_headers = {**self._base_headers}
        if not anonymous:
            all_headers.update(self.credentials.headers())
        if headers:
            all_headers.update(headers)
        # A body of pieces and known length (Content-Length set) goes in as a stream as it
        # is: httpx's wrapping of an async iterator was 7% of the client's instructions
        # per small file (callgrind). httpx then adds no headers, so Host is set here.
        stream = None
        if isinstance(content, AsyncIterator) and "Content-Length" in all_headers:
            stream = _Stream(content)
            all_headers.setdefault("Host", target.netloc.decode("ascii"))
        unknown = TransientError if idempotent else OutcomeUnknown
        whole = asyncio.timeout(deadline)
        try:
            async with whole:
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
        except TimeoutError:
            if not whole.expired():
                raise
            assert deadline is not None
            raise unknown(f"{what}: no complete answer within {_seconds(deadline)}") from None
        except AnswerTooLarge as exc:
            raise ProtocolError(f"{what}: {exc}") from None
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            if _tls_refusal(exc):  # never retried, never downgraded to plain HTTP
                raise TLSError(f"TLS failure with {self.root}: {_exc_text(exc)}") from None
            raise TransientError(f"cannot connect to {self.root}: {_exc_text(exc)}") from None
        except httpx.TransportError as exc:
            raise unknown(f"{what}: {method} interrupted: {_exc_text(exc)}") from None
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
        """PUT one chunk: `url` None creates the upload (first chunk, start 0). No overall
        deadline here: the uploader bounds a chunk by its progress (stall, answer)."""
        target = url or self.url("chunked_upload/")
        stream, content_length, content_type = multipart_body(filename, body, length)
        headers = {
            "Content-Range": f"bytes {start}-{start + length - 1}/{total}",
            "Content-Type": content_type,
            "Content-Length": str(content_length),
        }
        response = await self._send(
            "PUT", target, what="chunk", deadline=None, content=stream, headers=headers
        )
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
            "POST",
            self.url("chunked_upload/"),
            what="upload",
            deadline=self.timeouts.request,
            content=stream,
            headers=headers,
        )
        return self._upload_info(response)

    async def finalize(self, url: str, md5: str, size: int) -> UploadInfo:
        response = await self._send(
            "POST",
            url,
            what="finalize",
            deadline=self.timeouts.finalize_deadline(size),
            data={"md5": md5},
            timeout=self.timeouts.finalize(size),
        )
        return self._upload_info(response)

    async def state(self, url: str) -> UploadInfo:
        response = await self._send(
            "GET", url, what="upload state", deadline=self.timeouts.request, idempotent=True
        )
        return replace(self._upload_info(response), server_time=server_time(response))

    async def ping(self) -> None:
        """Reach the backend and check the credentials, cheaply: a GET of an upload id that
        cannot exist answers 404 when all is well, 401/403 when the token is refused.

        A URL that serves no API (a wrong path, e.g. `/api` missing or extra) answers 404
        too, so the 404 is checked once more without the token: an API refuses that (401/403)
        before it looks for the upload; a path nobody serves still says 404 (ConfigError)."""
        url = self.url("chunked_upload/00000000-0000-0000-0000-000000000000/")
        try:
            await self._send(
                "GET",
                url,
                what="start-up check",
                deadline=self.timeouts.check,
                idempotent=True,
            )
            return
        except UploadGone:
            pass
        try:
            await self._send(
                "GET",
                url,
                what="start-up check",
                deadline=self.timeouts.check,
                idempotent=True,
                anonymous=True,
            )
        except AuthError:
            return
        except UploadGone:
            raise ConfigError(
                f"no Synapse API at this URL: {self.root} answers 404 for its upload path "
                "(check the path of --host, e.g. a missing or extra /api)"
            ) from None

    async def list_uploads(self, filename: str | None = None) -> list[UploadInfo]:
        """The caller's uploads, every page of them (DRF pagination: `results` and `next`),
        up to MAX_LIST_PAGES pages and MAX_LIST_ITEMS items; `next` must stay in the origin.
        Past a bound, ProtocolError: recovery then knows it cannot tell, and says so.
        `filename`: asked as `?filename=` (the embedded backend lists only those; a server
        that ignores it lists all, and the caller filters by name anyway)."""
        out: list[UploadInfo] = []
        first = self.url("chunked_upload/")
        if filename is not None:
            first = str(httpx.URL(first, params={"filename": filename}))
        url: str | None = first
        seen: set[str] = set()
        pages = 0
        while url is not None:
            if pages >= MAX_LIST_PAGES or len(out) >= MAX_LIST_ITEMS:
                raise ProtocolError(
                    f"upload list longer than {pages} pages ({len(out)} uploads); not read further"
                )
            if url in seen:
                raise ProtocolError("upload list pages link back to a page already read")
            seen.add(url)
            pages += 1
            response = await self._send(
                "GET", url, what="upload list", deadline=self.timeouts.request, idempotent=True
            )
            data = self._json(response)
            url = None
            if isinstance(data, dict) and isinstance(data.get("results"), list):
                following = data.get("next")
                if isinstance(following, str) and following:
                    url = self.check_origin(following)
                data = data["results"]
            if not isinstance(data, list):
                raise ProtocolError("upload list is not a JSON list")
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
        response = await self._send(
            "GET", url, what=f"GET {path}", deadline=self.timeouts.request, idempotent=True
        )
        return self._json(response)

    async def post_json(self, path: str, body: Any, timeout: httpx.Timeout | None = None) -> Any:
        """POST a JSON body; `timeout` for a request the server may take long over (its read
        timeout then also lengthens the whole request's deadline)."""
        deadline = self.timeouts.request
        if timeout is not None and timeout.read is not None:
            deadline = max(deadline, timeout.read + (timeout.connect or 0.0))
        response = await self._send(
            "POST",
            self.url(path),
            what=f"POST {path}",
            deadline=deadline,
            json_body=body,
            timeout=timeout,
        )
        return self._json(response)


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


def _seconds(value: float) -> str:
    return f"{value:.0f}s" if value >= 10 else f"{value:.1f}s"


def _exc_text(exc: BaseException) -> str:
    text = escape_text(str(exc).strip())  # may quote the server's own bytes
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
