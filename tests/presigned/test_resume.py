"""Resume of a multipart upload after `kill -9`: only the parts without a journaled ETag go
again; expired URLs are renewed, or the file starts again when the backend cannot."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.faults.crash import Cli
from tests.faults.helpers import make_file
from tests.harness.embedded import EmbeddedServer
from tests.harness.moto import MotoServer
from tests.harness.proxy import Fault, Rule, ThreadedFaultProxy
from tests.presigned.conftest import PART, s3_backend

PARTS = 5
SIZE = (PARTS - 1) * PART + 4321


def journaled_etags(state: Path) -> int:
    path = state / "journal.sqlite3"
    if not path.exists():
        return 0
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return int(
            db.execute("SELECT COUNT(*) FROM presigned_parts WHERE etag IS NOT NULL").fetchone()[0]
        )
    except sqlite3.OperationalError:
        return 0
    finally:
        db.close()


@pytest.fixture
def proxied(
    moto: MotoServer, tmp_path: Path
) -> Iterator[tuple[ThreadedFaultProxy, EmbeddedServer]]:
    port = urlsplit(moto.endpoint).port
    assert port is not None
    with (
        ThreadedFaultProxy("127.0.0.1", port) as storage,
        s3_backend(moto, tmp_path / "root", storage.url) as server,
    ):
        yield storage, server


def part_puts(storage: ThreadedFaultProxy, after_conn: int = 0) -> int:
    """PUTs on connections accepted after `after_conn` (`storage.accepted` once the first
    process was killed): a PUT of the killed process read late by the proxy's thread is
    on one of its own connections, and never counted as the resuming process's."""
    return sum(1 for r in storage.requests if r.method == "PUT" and r.conn_id > after_conn)


def killed_mid_upload(cli: Cli, big: Path) -> int:
    """Upload slowly, SIGKILL once two parts are journaled; the ETags journaled then."""
    cli.kill_when(
        lambda: journaled_etags(cli.state_dir) >= 2,
        "two parts journaled",
        "upload", str(big), "--json", "-j", "1", "--bwlimit", "6M",
    )  # fmt: skip
    done = journaled_etags(cli.state_dir)
    assert 2 <= done < PARTS
    return done


def assert_stored(moto: MotoServer, server: EmbeddedServer, big: Path) -> None:
    rows = list(
        server.backend.store._conn().execute(
            "SELECT file_key FROM presigned_files WHERE data_file IS NOT NULL"
        )
    )
    assert len(rows) == 1
    assert moto.object_bytes(rows[0][0]) == big.read_bytes()


def test_kill_9_resumes_from_the_journaled_parts(
    proxied: tuple[ThreadedFaultProxy, EmbeddedServer], moto: MotoServer, tmp_path: Path
) -> None:
    storage, server = proxied
    big = make_file(tmp_path / "big.bin", SIZE, seed=11)
    cli = Cli(server.url, server.token, tmp_path / "state")
    done = killed_mid_upload(cli, big)
    before = storage.accepted
    result = cli.run("resume", "--json", "-v", timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.summary["uploaded"] == 1
    assert part_puts(storage, before) == PARTS - done  # only the parts without an ETag
    assert any("resuming with" in e.get("message", "") for e in result.of("log"))
    assert_stored(moto, server, big)


def test_expired_urls_are_renewed_on_resume(
    proxied: tuple[ThreadedFaultProxy, EmbeddedServer], moto: MotoServer, tmp_path: Path
) -> None:
    storage, server = proxied
    big = make_file(tmp_path / "big.bin", SIZE, seed=12)
    cli = Cli(server.url, server.token, tmp_path / "state")
    done = killed_mid_upload(cli, big)
    db = sqlite3.connect(tmp_path / "state" / "journal.sqlite3")
    db.execute("UPDATE presigned_files SET expires_at = ?", (time.time() - 10,))
    db.commit()
    db.close()
    before = storage.accepted
    result = cli.run("resume", "--json", "-v", timeout=120)
    assert result.returncode == 0, result.stderr
    assert any("fresh storage URLs" in e.get("message", "") for e in result.of("log"))
    assert part_puts(storage, before) == PARTS - done
    assert_stored(moto, server, big)


def test_a_backend_that_cannot_renew_urls_starts_the_file_again(
    proxied: tuple[ThreadedFaultProxy, EmbeddedServer], moto: MotoServer, tmp_path: Path
) -> None:
    storage, server = proxied
    big = make_file(tmp_path / "big.bin", SIZE, seed=13)
    port = urlsplit(server.url).port
    assert port is not None
    with ThreadedFaultProxy("127.0.0.1", port) as api:
        # The Synapse API has no call to renew URLs: it answers 404 there.
        api.add_rule(Rule(Fault("status", status=404), path_contains="presigned_upload/parts/"))
        cli = Cli(api.url + "/api", server.token, tmp_path / "state")
        killed_mid_upload(cli, big)
        db = sqlite3.connect(tmp_path / "state" / "journal.sqlite3")
        db.execute("UPDATE presigned_files SET expires_at = ?", (time.time() - 10,))
        db.commit()
        db.close()
        before = storage.accepted
        result = cli.run("resume", "--json", timeout=120)
    assert result.returncode == 0, result.stderr
    warnings = [e.get("message", "") for e in result.of("log")]
    assert any("cannot renew them; starting the file again" in w for w in warnings), warnings
    assert part_puts(storage, before) == PARTS  # every part again
    assert_stored(moto, server, big)
