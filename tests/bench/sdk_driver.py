"""Runs under the official client's interpreter (Python >= 3.12): upload files one by one.

Usage: python sdk_driver.py HOST TOKEN CHUNK_SIZE FILE_OR_DIR...
Prints one JSON line: {"files": n, "bytes": b, "seconds": s}. Only the stdlib and
synapse_sdk are imported, so this file never imports the project.
"""

import json
import os
import sys
import time


def main() -> int:
    host, token, chunk = sys.argv[1], sys.argv[2], int(sys.argv[3])
    paths: list[str] = []
    for arg in sys.argv[4:]:
        if os.path.isdir(arg):
            paths.extend(os.path.join(arg, n) for n in sorted(os.listdir(arg)))
        else:
            paths.append(arg)
    from synapse_sdk.clients.backend import BackendClient

    client = BackendClient(host, access_token=token, timeout={"connect": 15, "read": 600})
    started = time.perf_counter()
    total = 0
    for path in paths:
        client.create_chunked_upload(path, chunk_size=chunk, read_timeout=600)
        total += os.path.getsize(path)
    seconds = time.perf_counter() - started
    print(json.dumps({"files": len(paths), "bytes": total, "seconds": seconds}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
