"""What one client may make the backend hold: request head size and header count."""

from __future__ import annotations

# The request line and headers together. Our client and the SDK send well under 2 KiB;
# gunicorn allows 100 fields of 8 KiB, nginx 32 KiB of large headers by default.
MAX_HEAD_BYTES = 64 << 10
MAX_HEADERS = 100

HEAD_TOO_LARGE = "Request header fields too large"


def head_too_large_response() -> bytes:
    """The whole 431 answer, written before the connection is closed."""
    body = HEAD_TOO_LARGE.encode()
    return (
        b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
        b"content-type: text/plain; charset=utf-8\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n"
        b"connection: close\r\n\r\n" + body
    )
