"""The least a client can do to upload small files: case 4's ceiling on this machine.

Usage: python lean_driver.py HOST TOKEN CONNECTIONS FOLDER...
Uploads every file of the folders (not recursive), each in one multipart POST of
`chunked_upload/` with its filename and MD5 (what our engine sends for a small file), over
CONNECTIONS keep-alive HTTP/1.1 connections, raw on asyncio streams; checks each answer's
status and prints one JSON line: {"files": n, "bytes": b, "seconds": s}. No journal, no
pre-scan, no retries, no output per file: none of what makes an upload resumable and safe.
Only the standard library is imported (never the project), so its start-up is the
interpreter's.
"""

import asyncio
import hashlib
import json
import os
import sys
import time
from urllib.parse import urlsplit


def _request(host: str, path: str, token: str, name: str, data: bytes) -> bytes:
    boundary = "lean-" + os.urandom(8).hex()
    md5 = hashlib.md5(data).hexdigest()
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="filename"\r\n\r\n{name}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="md5"\r\n\r\n{md5}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Token {token}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head + body


async def _upload(url: str, token: str, connections: int, paths: list[str]) -> int:
    parts = urlsplit(url)
    target = parts.path.rstrip("/") + "/chunked_upload/"
    queue = iter(paths)
    sent = 0

    async def one_connection() -> None:
        nonlocal sent
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        try:
            for path in queue:
                with open(path, "rb") as f:
                    data = f.read()
                name = os.path.basename(path)
                writer.write(_request(parts.netloc, target, token, name, data))
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.split(b"\r\n")
                status = int(lines[0].split()[1])
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in lines
                    if line.lower().startswith(b"content-length:")
                )
                answer = json.loads(await reader.readexactly(length))
                if status != 200 or answer.get("status") not in ("complete", 2, "2"):
                    raise SystemExit(f"{path}: answered {status} {answer}")
                sent += len(data)
        finally:
            writer.close()

    await asyncio.gather(*(one_connection() for _ in range(connections)))
    return sent


def main() -> int:
    host, token, connections = sys.argv[1], sys.argv[2], int(sys.argv[3])
    paths = sorted(
        os.path.join(folder, name) for folder in sys.argv[4:] for name in os.listdir(folder)
    )
    started = time.perf_counter()
    sent = asyncio.run(_upload(host, token, connections, paths))
    seconds = time.perf_counter() - started
    print(json.dumps({"files": len(paths), "bytes": sent, "seconds": seconds}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
