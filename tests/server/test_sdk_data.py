"""The official synapse-sdk's data-collection workflow, its own methods in its own Python,
against the embedded backend (`serve --prefix /api --collection photos:...`)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from synapse_tui.server.specs import parse_collection
from tests.harness.embedded import EmbeddedServer
from tests.harness.sdk_env import sdk_python

PNG = b"\x89PNG\r\n\x1a\n"

# Runs in the SDK's interpreter. The SDK downloads into /tmp/datamaker: pointed at the
# test's own folder instead. Prints one JSON object (paths as strings).
WORKFLOW = r"""
import json, sys
from pathlib import Path
import synapse_sdk.utils.file.download as download
url, token, collection, folder = sys.argv[1:5]
folder = Path(folder)
download.get_temp_path = lambda sub=None: folder / "sdk-tmp" / (sub or "")
from synapse_sdk.clients.backend import BackendClient
client = BackendClient(url, access_token=token)
collection = int(collection)
out = {"collection": client.get_data_collection(collection)}
out["direct"] = client.create_data_file(folder / "a.png")
out["chunked"] = client.create_data_file(folder / "a.json", use_chunked_upload=True)
payload = client.upload_data_file(
    {"files": {"image": str(folder / "b.png"), "label": str(folder / "b.json")},
     "meta": {"n": 1}, "groups": ["batch-01", "left"]},
    collection,
)
out["unit"] = client.create_data_units(payload)
client.upload_data_collection(
    collection, [{"files": {"image": str(folder / f"c{i}.png")}, "meta": {"i": i}}
                 for i in range(3)], max_workers=2,
)
out["page"] = client.list_data_units(params={"data_collection": collection}, page_size=2)
rows, count = client.list_data_units(
    params={"data_collection": collection}, list_all=True, page_size=2
)
out["all"] = list(rows)
out["count"] = count
out["one"] = client.get_data_unit(out["unit"]["id"], params={"expand": "files"})
out["verify"] = client.verify_data_files_checksums(sys.argv[5:])
print(json.dumps(out, default=str))
"""


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@pytest.fixture(scope="module")
def sdk() -> Path:
    python = sdk_python()
    if python is None:
        pytest.skip("no Python >= 3.12 with synapse-sdk (set SYNAPSE_TUI_SDK_PYTHON to one)")
    return python


@pytest.fixture
def photos(make_server: Callable[..., EmbeddedServer]) -> EmbeddedServer:
    return make_server(
        prefix="/api", collections=[parse_collection("photos:image*:image,label?:data")]
    )


def run_sdk(sdk: Path, script: str, *args: str) -> Any:
    proc = subprocess.run(
        [str(sdk), "-c", script, *args], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_sdk_data_workflow(sdk: Path, photos: EmbeddedServer, tmp_path: Path) -> None:
    srv = photos
    content = {
        "a.png": PNG + os.urandom(5000),
        "a.json": b'{"label": "a"}',
        "b.png": PNG + os.urandom(7000),
        "b.json": b'{"label": "b"}',
        **{f"c{i}.png": PNG + os.urandom(3000 + i) for i in range(3)},
    }
    for name, data in content.items():
        (tmp_path / name).write_bytes(data)
    by_md5 = {md5(data): data for data in content.values()}
    out = run_sdk(sdk, WORKFLOW, srv.url, srv.token, "1", str(tmp_path),
                  md5(content["a.png"]), md5(b"never uploaded"))  # fmt: skip

    specs = out["collection"]["file_specifications"]
    assert [(s["name"], s["file_type"], s["is_required"], s["is_primary"]) for s in specs] == [
        ("image", "image", True, True),
        ("label", "data", False, False),
    ]
    store = srv.backend.store
    for key, name in (("direct", "a.png"), ("chunked", "a.json")):
        record = store.data_file(out[key]["id"])
        assert record["checksum"] == md5(content[name]) and record["filename"] == name
        assert (srv.root / "files" / record["chunked_upload"]).read_bytes() == content[name]

    unit = out["unit"]
    assert unit["groups"] == ["batch-01", "left"] and unit["group"] == "left"
    assert unit["meta"] == {"n": 1}
    assert out["one"]["id"] == unit["id"] and out["one"]["groups"] == ["batch-01", "left"]
    one = out["one"]["files"]
    assert (one["image"]["file_name_original"], one["image"]["is_primary"]) == ("b.png", True)
    assert (one["label"]["file_name_original"], one["label"]["is_primary"]) == ("b.json", False)
    assert one["label"]["file_type"] == "data" and one["image"]["size"] == len(content["b.png"])
    for entry in one.values():  # every stored byte, read back through its signed URL
        assert httpx.get(entry["url"], timeout=30).content == by_md5[entry["checksum"]]

    # Pages of 2. With list_all the SDK downloaded every file (no token) to a local path;
    # a single page keeps the URLs (the SDK converts only there).
    assert out["page"]["count"] == 4 and len(out["page"]["results"]) == 2
    assert out["page"]["next"] and out["page"]["previous"] is None
    for u in out["page"]["results"]:
        for entry in u["files"].values():
            assert httpx.get(entry["url"], timeout=30).content == by_md5[entry["checksum"]]
    assert out["count"] == 4 and len(out["all"]) == 4
    assert sorted(u["meta"].get("i", -1) for u in out["all"]) == [-1, 0, 1, 2]
    for u in out["all"]:
        for entry in u["files"].values():
            assert "url" not in entry  # the SDK swapped it for the downloaded path
            assert Path(entry["path"]).read_bytes() == by_md5[entry["checksum"]]
    assert out["verify"]["existing_checksums"] == [md5(content["a.png"])]


READ_BACK = r"""
import json, sys
from pathlib import Path
import synapse_sdk.utils.file.download as download
url, token, collection, folder = sys.argv[1:5]
download.get_temp_path = lambda sub=None: Path(folder) / "sdk-tmp" / (sub or "")
from synapse_sdk.clients.backend import BackendClient
client = BackendClient(url, access_token=token)
out = {"collection": client.get_data_collection(int(collection))}
rows, count = client.list_data_units(params={"data_collection": int(collection)}, list_all=True)
out["all"], out["count"] = list(rows), count
out["one"] = client.get_data_unit(out["all"][0]["id"], params={"expand": "files"})
print(json.dumps(out, default=str))
"""


def test_what_synapse_tui_registers_reads_back_through_the_sdk(
    sdk: Path, photos: EmbeddedServer, tmp_path: Path
) -> None:
    from synapse_tui.cli import main

    srv = photos
    data = tmp_path / "data"
    data.mkdir()
    content = {"x.png": PNG + os.urandom(4000), "x.json": b'{"x": 1}', "y.png": PNG + b"y"}
    for name, body in content.items():
        (data / name).write_bytes(body)
    code = main(["upload", str(data), "--collection", "photos", "--group-by-stem",
                 "--spec-map", "png=image,json=label", "--host", srv.url, "--token", srv.token,
                 "--state-dir", str(tmp_path / "st")])  # fmt: skip
    assert code == 0
    out = run_sdk(sdk, READ_BACK, srv.url, srv.token, "1", str(tmp_path))
    assert out["collection"]["name"] == "photos" and out["count"] == 2
    by_stem = {u["meta"]["origin_file_stem"]: u for u in out["all"]}
    assert set(by_stem["x"]["files"]) == {"image", "label"} and set(by_stem["y"]["files"]) == {
        "image"
    }
    for unit in out["all"]:
        for spec, entry in unit["files"].items():
            name = entry["file_name_original"]
            assert Path(entry["path"]).read_bytes() == content[name]  # downloaded, no token
            assert entry["is_primary"] == (spec == "image")
    one = out["one"]
    assert one["id"] == out["all"][0]["id"]
    assert all(e["url"] and e["checksum"] == md5(content[e["file_name_original"]])
               for e in one["files"].values())  # fmt: skip
