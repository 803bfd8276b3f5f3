"""Runs under the official client's interpreter (Python >= 3.12): its presigned bulk path.

Usage: python sdk_bulk_driver.py HOST TOKEN WORKERS FILE_OR_DIR...
Calls `upload_files_bulk(paths, strategy='presigned', max_workers=WORKERS)` once and
prints one JSON line: {"files", "bytes", "seconds", "created", "failed", "results"}
(`results`: file path -> data file id). Only the stdlib and synapse_sdk are imported.
"""

import json
import os
import sys
import time
from pathlib import Path


def main() -> int:
    host, token, workers = sys.argv[1], sys.argv[2], int(sys.argv[3])
    paths: list[Path] = []
    for arg in sys.argv[4:]:
        if os.path.isdir(arg):
            paths.extend(Path(arg, n) for n in sorted(os.listdir(arg)))
        else:
            paths.append(Path(arg))
    from synapse_sdk.clients.backend import BackendClient

    client = BackendClient(host, access_token=token, timeout={"connect": 15, "read": 600})
    started = time.perf_counter()
    answer = client.upload_files_bulk(paths, strategy="presigned", max_workers=workers)
    seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                "files": len(paths),
                "bytes": sum(p.stat().st_size for p in paths),
                "seconds": seconds,
                "created": answer.created_count,
                "failed": answer.failed_count,
                "errors": sorted({r.error for r in answer.results if r.error})[:5],
                "results": {r.file_key: r.data_file_id for r in answer.results},
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
