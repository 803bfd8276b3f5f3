"""The upload engine: stdlib, httpx and xxhash only; never Textual or Rich."""

from __future__ import annotations

import sys
import types
from typing import Any

# httpx's package init imports its optional command-line client, `httpx._main`, which loads
# rich, pygments and click whenever they are installed (Textual and uvicorn bring them).
# The engine needs none of it: until httpx is first imported an empty `httpx._main` stands
# in, and `forget_httpx_stub()` (called by transport.py right after `import httpx`) takes
# it out of sys.modules, so nothing else in the process sees it; `httpx.main` is then a
# function that imports the real client when called. This keeps the engine free of Rich
# (tests/engine/test_boundary.py) and saves a tenth of a second at start; httpx itself is
# not imported here, so commands that never send a request do not load it.
# tests/engine/test_import_patches.py fails if httpx changes under it.
_stub: types.ModuleType | None = None
if "httpx" not in sys.modules and "httpx._main" not in sys.modules:
    _stub = types.ModuleType("httpx._main")

    def _main(*args: Any, **kwargs: Any) -> Any:
        from httpx._main import main  # the real one: the stub is gone from sys.modules

        return main(*args, **kwargs)

    _stub.main = _main  # type: ignore[attr-defined]
    sys.modules["httpx._main"] = _stub


def forget_httpx_stub() -> None:
    """After `import httpx`: the stand-in leaves sys.modules and the httpx package."""
    if _stub is None:
        return
    if sys.modules.get("httpx._main") is _stub:
        del sys.modules["httpx._main"]
    httpx = sys.modules.get("httpx")
    if httpx is not None and getattr(httpx, "_main", None) is _stub:
        del httpx._main
