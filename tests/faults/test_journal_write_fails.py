"""A journal that cannot be written any more (disk full, I/O error) stops the run in one line.

The file size limit (RLIMIT_FSIZE, set in the CLI's process only) makes SQLite's writes
fail as a full disk would. Every state change after the first failed write raised it
again, a traceback per job ("internal error on job N"), before the last line.
"""

from __future__ import annotations

import resource
import subprocess
from pathlib import Path

from tests.faults.crash import Cli
from tests.harness.embedded import EmbeddedServer

LIMIT = 300_000  # bytes a file of the CLI may grow to: the journal's WAL passes it soon


def test_a_journal_write_that_fails_stops_the_run_in_one_line(
    embedded_server: EmbeddedServer, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(400):
        (src / f"f{i:04d}.bin").write_bytes(b"%08d" % i * 50)
    state = tmp_path / "state"
    cli = Cli(embedded_server.url, embedded_server.token, state)

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, LIMIT))

    done = subprocess.run(
        cli.argv(["upload", str(src)]),
        env=cli.env(),
        cwd=cli.cwd,
        capture_output=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        preexec_fn=limit,
    )
    err = done.stderr.decode("utf-8", "replace")
    assert done.returncode != 0
    assert "Traceback" not in err and "internal error" not in err, err[:2000]
    lines = [line for line in err.splitlines() if line.strip()]
    assert 1 <= len(lines) <= 2, lines  # the stop, and the command's error
    assert all("journal" in line for line in lines), lines
    assert str(state) in err
