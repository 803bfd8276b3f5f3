"""The same faults against the embedded backend (synapse_tui.server), and its own rows.

The embedded backend is started in process (``BackgroundServer``) with two tokens and a
size cap. Its storage layout is its own business, so "stored bytes equal the file" is
checked by the server accepting our MD5 at finalize plus a file under its root holding
exactly the file's bytes.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from synapse_tui.engine import transport
from tests.faults.helpers import (
    CHUNK,
    TimedProxy,
    auth,
    make_file,
    run_engine,
    uploads_named,
    via,
)
from tests.harness.proxy import Fault, FaultKind, Rule

server_runner = pytest.importorskip("synapse_tui.server.runner")
server_config = pytest.importorskip("synapse_tui.server.config")

ALICE, BOB = "tok-embedded-alice", "tok-embedded-bob"
MAX_BYTES = 1024 * 1024


@dataclass
class Embedded:
    url: str
    token: str
    other_token: str
    root: Path
    port: int


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Embedded]:
    root = tmp_path_factory.mktemp("embedded") / "root"
    config = server_config.ServerConfig(
        root=root, tokens=[ALICE, BOB], max_bytes=MAX_BYTES, prefix="/api"
    )
    server = server_runner.BackgroundServer(config)
    url = server.start()
    try:
        yield Embedded(url, ALICE, BOB, root, server.port)
    finally:
        server.stop()


@pytest.fixture
async def eproxy(embedded: Embedded) -> AsyncIterator[TimedProxy]:
    p = TimedProxy("127.0.0.1", embedded.port)
    await p.start()
    try:
        yield p
    finally:
        await p.stop()


def assert_complete_once(srv: Embedded, f: Path) -> None:
    named = uploads_named(srv.url, srv.token, f)
    complete = [u for u in named if u.get("status") == 2]
    assert len(complete) == 1, named
    assert complete[0]["offset"] == f.stat().st_size
    local = f.read_bytes()
    assert any(
        p.is_file() and p.stat().st_size == len(local) and p.read_bytes() == local
        for p in srv.root.rglob("*")
    ), "no file under the server's root holds the file's bytes"


FAULTS = {
    "cut-mid-body": (Rule(Fault("cut_body", after_bytes=10_000), method="PUT", nth=2), 1),
    "reset": (Rule(Fault("reset", after_bytes=CHUNK // 2), method="PUT", nth=3), 1),
    "lost-ack": (Rule(Fault("drop_response"), method="PUT", nth=2), 0),
    "lost-finalize-answer": (Rule(Fault("drop_response"), method="POST", nth=1), 0),
    "stalled-answer": (Rule(Fault("stall", seconds=0), method="PUT", nth=2), 0),
}


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_network_faults_against_the_embedded_backend(
    embedded: Embedded, eproxy: TimedProxy, tmp_path: Path, fault: str
) -> None:
    """Cut, reset, lost acknowledgement, lost finalize answer, stalled answer: one complete
    upload with the file's bytes, at most the one hit chunk sent twice."""
    rule, resent = FAULTS[fault]
    f = make_file(tmp_path / f"embedded-{fault}.bin", 4 * CHUNK + 17, seed=len(fault))
    eproxy.add_rule(rule)
    out = await run_engine(
        via(eproxy), embedded.token, [f], tmp_path / "state", response_timeout=0.5
    )
    assert len(out.done) == 1, out.events
    assert len(eproxy.puts()) == 5 + resent
    assert_complete_once(embedded, f)


async def test_embedded_still_writing_gets_no_second_put(
    embedded: Embedded, eproxy: TimedProxy, tmp_path: Path
) -> None:
    """The client times out while the server still waits for PUT 2's last byte."""
    f = make_file(tmp_path / "embedded-still-writing.bin", 3 * CHUNK)
    eproxy.hold_put(2)
    out = await run_engine(
        via(eproxy),
        embedded.token,
        [f],
        tmp_path / "state",
        response_timeout=0.5,
        settle_delay=1.0,  # far longer than the server needs for the last byte
    )
    assert len(out.done) == 1, out.events
    assert len(eproxy.puts()) == 3
    assert_complete_once(embedded, f)


def test_embedded_requires_a_token(embedded: Embedded) -> None:
    with httpx.Client(timeout=10) as c:
        for headers in ({}, auth("not-a-token")):
            r = c.get(embedded.url + "/chunked_upload/", headers=headers)
            assert r.status_code in (401, 403), r.status_code


async def test_embedded_isolates_uploads_per_token(
    embedded: Embedded, eproxy: TimedProxy, tmp_path: Path
) -> None:
    """Bob can neither see, read, extend nor finalize Alice's upload."""
    f = make_file(tmp_path / "embedded-alice-only.bin", 2 * CHUNK)
    eproxy.add_rule(Rule(Fault("status", status=503), method="POST"))
    out = await run_engine(via(eproxy), embedded.token, [f], tmp_path / "state", retries=0)
    assert out.failed and out.failed[0].resumable
    [upload] = uploads_named(embedded.url, embedded.token, f)
    own = f"{embedded.url}/chunked_upload/{upload['id']}/"
    bob = auth(embedded.other_token)
    with httpx.Client(timeout=10) as c:
        assert c.get(own, headers=bob).status_code == 404
        listed = c.get(embedded.url + "/chunked_upload/", headers=bob).json()
        listed = listed["results"] if isinstance(listed, dict) else listed
        assert upload["id"] not in {u["id"] for u in listed}
        r = c.post(own, headers=bob, data={"md5": "0" * 32})
        assert r.status_code == 404
        r = c.put(
            own,
            headers={**bob, "Content-Range": f"bytes {2 * CHUNK}-{2 * CHUNK}/{2 * CHUNK + 1}"},
            files={"file": ("x", b"x")},
            data={"filename": "x"},
        )
        assert r.status_code == 404
        assert c.get(own, headers=auth(embedded.token)).json()["offset"] == 2 * CHUNK


async def test_embedded_caps_sizes(embedded: Embedded, eproxy: TimedProxy, tmp_path: Path) -> None:
    """A file over the server's cap fails at once with the server's reason (no retry)."""
    f = make_file(tmp_path / "embedded-too-big.bin", MAX_BYTES + 1)
    out = await run_engine(via(eproxy), embedded.token, [f], tmp_path / "state")
    assert out.done == [] and len(out.failed) == 1 and not out.failed[0].resumable
    assert len(eproxy.puts()) == 1


def test_embedded_never_writes_outside_its_root(embedded: Embedded, tmp_path: Path) -> None:
    """File names with ../ and absolute paths are stored under the root (or refused)."""
    marker = uuid.uuid4().hex
    names = [f"../../{marker}-a.bin", f"/tmp/{marker}-b.bin", f"..\\..\\{marker}-c.bin"]
    with httpx.Client(timeout=10) as c:
        for name in names:
            data = marker.encode()
            c.put(
                embedded.url + "/chunked_upload/",
                headers={
                    **auth(embedded.token),
                    "Content-Range": f"bytes 0-{len(data) - 1}/{len(data)}",
                },
                files={"file": (name, data)},
                data={"filename": name},
            )
    root = embedded.root.resolve()
    assert not any(marker in n for n in os.listdir("/tmp"))
    for dirpath, _dirs, files in os.walk(root.parents[1]):  # the whole pytest base folder
        if Path(dirpath).resolve().is_relative_to(root):
            continue
        assert not any(marker in n for n in files), (dirpath, files)


def test_serve_binds_loopback_by_default() -> None:
    from synapse_tui.cli import build_parser

    args = build_parser().parse_args(["serve"])
    assert args.bind == "127.0.0.1"
    assert server_runner.BackgroundServer.__init__.__defaults__[0] == "127.0.0.1"


async def test_embedded_empty_file(embedded: Embedded, eproxy: TimedProxy, tmp_path: Path) -> None:
    """An empty file against the embedded backend is uploaded (one whole-file request),
    unlike drf-chunked-upload, which refuses empty files (see test_local_files)."""
    f = tmp_path / "embedded-empty.bin"
    f.write_bytes(b"")
    out = await run_engine(via(eproxy), embedded.token, [f], tmp_path / "state")
    assert [d.size for d in out.done] == [0], out.events
    [upload] = uploads_named(embedded.url, embedded.token, f)
    assert (upload["status"], upload["offset"]) == (2, 0)
    assert eproxy.puts() == []


@pytest.mark.parametrize("fault", ["drop_response", "cut_body"])
async def test_embedded_small_file_lost_answer_is_found_by_its_md5(
    embedded: Embedded, eproxy: TimedProxy, tmp_path: Path, fault: FaultKind
) -> None:
    """A small file goes whole in one POST. Its answer lost (or its body cut): the client
    looks for a complete upload of its name, size and MD5 before sending again, so the
    backend ends with exactly one complete copy either way."""
    f = make_file(tmp_path / f"embedded-small-{fault}.bin", CHUNK // 2, seed=7)
    eproxy.add_rule(Rule(Fault(fault, after_bytes=1000), method="POST", nth=1))
    out = await run_engine(
        via(eproxy), embedded.token, [f], tmp_path / "state", response_timeout=0.5
    )
    assert len(out.done) == 1, out.events
    assert eproxy.puts() == []
    posts = [r for r in eproxy.requests if r.method == "POST"]
    assert len(posts) == (1 if fault == "drop_response" else 2)
    assert_complete_once(embedded, f)


async def test_a_lost_answer_is_found_among_more_uploads_than_a_list_holds(
    embedded: Embedded, eproxy: TimedProxy, tmp_path: Path
) -> None:
    """More uploads on the server than one answer may hold (the client reads at most 1 MiB,
    as after a million-file run): the client asks for the file's name (`?filename=`, which
    the embedded backend honours) and still finds the upload its lost answer left, instead
    of saying it cannot search and sending the file a second time."""
    folder = tmp_path / "others"
    folder.mkdir()
    for i in range(2000):  # long names: the whole list is over the cap with fewer uploads
        (folder / f"{'n' * 200}-{i:05d}.bin").write_bytes(b"%d" % i)
    first = await run_engine(embedded.url, embedded.token, [folder], tmp_path / "state0")
    assert len(first.done) == 2000, first.events[-3:]
    listing = httpx.get(
        embedded.url + "/chunked_upload/",
        headers={"Synapse-Access-Token": f"Token {embedded.token}"},
        timeout=60,
    )
    assert len(listing.content) > transport.MAX_ANSWER_BYTES  # what the client cannot read
    f = make_file(tmp_path / "embedded-small-among-many.bin", CHUNK // 2, seed=11)
    eproxy.add_rule(Rule(Fault("drop_response", after_bytes=1000), method="POST", nth=1))
    out = await run_engine(
        via(eproxy), embedded.token, [f], tmp_path / "state", response_timeout=0.5
    )
    assert len(out.done) == 1, out.events
    assert len([r for r in eproxy.requests if r.method == "POST"]) == 1  # never sent again
    assert_complete_once(embedded, f)
