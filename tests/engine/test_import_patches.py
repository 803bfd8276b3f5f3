"""What the engine borrows from other libraries' private parts still holds, and stays its own.

Each test fails if the library changes under the engine: httpx's `httpx._main` import,
httpx's `Response._content`, asyncio's `StreamReader._buffer`, uvicorn's body handling.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import httpx

from synapse_tui.engine.transport import LeanTransport, _Reader


def _fresh(code: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_the_httpx_main_stub_is_gone_after_the_engine_imports_httpx() -> None:
    """The engine keeps httpx's command-line client (rich, click) out of its process, and
    leaves nothing behind: `httpx._main` imports the real module afterwards."""
    got = _fresh(
        "import json, sys\n"
        "import synapse_tui.engine.protocol, httpx\n"
        "before = 'httpx._main' in sys.modules\n"
        "rich = sorted(m for m in sys.modules if m.split('.')[0] == 'rich')\n"
        "import httpx._main as real\n"
        "print(json.dumps({'before': before, 'rich': rich, 'file': real.__file__ or '',\n"
        "                  'click': hasattr(real, 'click'), 'callable': callable(httpx.main)}))\n"
    )
    assert got["before"] is False
    assert got["rich"] == []
    assert str(got["file"]).endswith("httpx/_main.py")
    assert got["click"] is True  # the real client, not the stand-in
    assert got["callable"] is True


def test_httpx_main_still_runs_the_real_client() -> None:
    """`httpx.main` after the engine's import runs httpx's own command-line client."""
    code = (
        "import json, synapse_tui.engine.protocol, httpx\n"
        "try:\n"
        "    httpx.main(['--help'], standalone_mode=False)\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(json.dumps({}))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert "Usage" in proc.stdout and "--method" in proc.stdout


def test_no_process_wide_sniffio_patch() -> None:
    got = _fresh(
        "import json, sys\n"
        "import synapse_tui.engine.protocol\n"
        "patched = 'sniffio' in sys.modules and sys.modules['sniffio'] is None\n"
        "print(json.dumps({'patched': patched}))\n"
    )
    assert got["patched"] is False


async def test_stream_reader_buffer_is_what_buffered_counts() -> None:
    """`_Reader.buffered()` reads StreamReader's private `_buffer`: it must count bytes fed
    and not yet read, or small answers would each pay for a deadline they cannot need."""
    reader = _Reader(limit=1 << 16)
    assert hasattr(reader, "_buffer")  # asyncio renamed it: see transport.py
    assert reader.buffered() == 0
    reader.feed_data(b"abcdef")
    assert reader.buffered() == 6
    assert await reader.readexactly(4) == b"abcd"
    assert reader.buffered() == 2


async def test_small_answer_is_read_without_a_second_pass() -> None:
    """The transport sets httpx's private `Response._content` on small answers; if httpx
    renamed it, `.content` would raise ResponseNotRead here."""
    body = b'{"ok": true}'

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    transport = LeanTransport()
    try:
        request = httpx.Request("GET", f"http://127.0.0.1:{port}/")
        response = await transport.handle_async_request(request)
        assert response.content == body  # no aread(): already read
        assert response.json() == {"ok": True}
    finally:
        await transport.aclose()
        server.close()
