"""PUTs to presigned storage URLs: no credentials, only to the announced storage origin.

A presigned URL is a credential for its object, so it is never part of a message: errors
name the origin (scheme, host, port) and the storage's error `Code`, nothing else (an S3
`SignatureDoesNotMatch` body carries the string to sign: only `Code` is read from it).
The API token never goes here: requests carry no auth header whatever the origin.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import urlsplit

import httpx

from synapse_tui.engine.errors import (
    OriginError,
    ServerRejected,
    SynapseError,
    TransientError,
    UploadGone,
)
from synapse_tui.engine.protocol import USER_AGENT, Timeouts, parse_retry_after
from synapse_tui.engine.transport import LeanTransport

_CODE = re.compile(rb"<Code>([A-Za-z0-9.]{1,64})</Code>")
_ERROR_PEEK = 4096  # bytes of an error body searched for its Code
EXPIRED_CODES = frozenset(
    {"AccessDenied", "ExpiredToken", "RequestExpired", "TokenRefreshRequired"}
)
DIGEST_CODES = frozenset({"BadDigest", "InvalidDigest"})


class UrlExpired(SynapseError):
    """The storage refused a presigned URL (403: expired, or no longer valid): ask again."""


class StorageDigest(TransientError):
    """The storage computed another MD5 for the body than its Content-MD5 said."""


Origin = tuple[str, str, int]


def origin_of(url: str) -> Origin:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or (443 if scheme == "https" else 80)


def show(origin: Origin) -> str:
    return f"{origin[0]}://{origin[1]}:{origin[2]}"


class StorageClient:
    """HTTP/1.1 to the object storage, on a pool of its own."""

    def __init__(
        self,
        *,
        verify: bool | str = True,
        timeouts: Timeouts | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        max_connections: int = 64,
    ) -> None:
        self.timeouts = (timeouts or Timeouts()).default().as_dict()
        self._transport = transport or LeanTransport(verify=verify, max_connections=max_connections)
        self.allowed: set[Origin] = set()
        self.barrier: Callable[[], Awaitable[None]] | None = None  # see ProtocolClient

    def allow(self, endpoint_url: str, bucket: str | None = None) -> None:
        """Accept URLs of this origin (and its virtual-hosted `bucket.` form)."""
        try:
            scheme, host, port = origin_of(endpoint_url)
        except ValueError:  # a port that is not a number, or out of range
            raise OriginError("the storage's endpoint has an invalid port") from None
        if scheme not in ("http", "https") or not host:
            raise OriginError("the storage's endpoint is not an http(s) URL")
        self.allowed.add((scheme, host, port))
        if bucket:
            self.allowed.add((scheme, f"{bucket.lower()}.{host}", port))

    def check(self, url: str) -> httpx.URL:
        try:
            origin = origin_of(url)
        except ValueError:
            raise OriginError("a presigned URL has an invalid port; refused") from None
        if origin not in self.allowed:
            raise OriginError(
                f"a presigned URL points outside the storage the backend announced "
                f"({show(origin)}); refused"
            )
        return httpx.URL(url)

    async def aclose(self) -> None:
        await self._transport.aclose()

    async def put(self, url: str, body: AsyncIterator[bytes] | bytes, length: int, md5: str) -> str:
        """PUT `length` bytes with their base64 MD5 as Content-MD5; returns the ETag."""
        if self.barrier is not None:
            await self.barrier()
        target = self.check(url)
        headers = {
            "Host": target.netloc.decode("ascii"),
            "User-Agent": USER_AGENT,
            "Content-Length": str(length),
            "Content-MD5": md5,
        }
        stream: httpx.AsyncByteStream | None = None
        content: bytes | None = None
        if isinstance(body, bytes):
            content = body
        else:
            stream = _Stream(body)
        request = httpx.Request(
            "PUT",
            target,
            headers=headers,
            content=content,
            stream=stream,
            extensions={"timeout": self.timeouts},
        )
        origin = show(origin_of(url))
        try:
            response = await self._transport.handle_async_request(request)
            try:
                await response.aread()
            finally:
                await response.aclose()
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise TransientError(f"cannot connect to the storage {origin}: {_name(exc)}") from None
        except httpx.TransportError as exc:
            # A PUT to a presigned URL is idempotent (the same bytes to the same object or
            # part): an interrupted one is simply sent again.
            raise TransientError(f"PUT to the storage interrupted: {_name(exc)}") from None
        return _etag_or_raise(response, origin)


def _etag_or_raise(response: httpx.Response, origin: str) -> str:
    code = response.status_code
    if 200 <= code < 300:
        etag = response.headers.get("ETag")
        if not etag:
            raise ServerRejected(f"the storage {origin} answered without an ETag", status=code)
        return etag
    found = _CODE.search(response.content[:_ERROR_PEEK])
    name = found.group(1).decode() if found else ""
    what = f"storage {origin} answered {code}" + (f" {name}" if name else "")
    if code == 403 and (name in EXPIRED_CODES or not name):
        raise UrlExpired(f"{what}: the presigned URL expired or is no longer valid")
    if name in DIGEST_CODES:
        raise StorageDigest(f"{what}: the body's MD5 differs from its Content-MD5")
    if code in (408, 429) or code >= 500:
        retry = parse_retry_after(response.headers.get("Retry-After"))
        raise TransientError(what, retry_after=retry)
    if code == 404 and name in ("NoSuchUpload", "NoSuchKey", ""):
        raise UploadGone(f"{what}: the upload is gone", status=404)
    raise ServerRejected(f"{what}", status=code)


def _name(exc: BaseException) -> str:
    # httpx messages may quote the request URL: only the exception's type is shown.
    return type(exc).__name__


class _Stream(httpx.AsyncByteStream):
    __slots__ = ("_pieces",)

    def __init__(self, pieces: AsyncIterator[bytes]) -> None:
        self._pieces = pieces

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._pieces
