"""The upload engine: stdlib, httpx and xxhash only; never Textual or Rich."""

from __future__ import annotations

import sys
import types
from typing import Any

# httpx's package init imports its optional command-line client, `httpx._main`, which loads
# rich, pygments and click whenever they are installed (Textual and uvicorn bring them).
# The engine needs none of it: while httpx is first imported an empty `httpx._main` stands
# in, and is taken out of sys.modules right after, so nothing else in the process sees it.
# `httpx.main` becomes a function that imports the real client when called. This keeps the
# engine free of Rich (tests/engine/test_boundary.py) and saves a tenth of a second at start;
# tests/engine/test_import_patches.py fails if httpx changes under it.
if "httpx" not in sys.modules and "httpx._main" not in sys.modules:
    _stub = types.ModuleType("httpx._main")

    def _main(*args: Any, **kwargs: Any) -> Any:
        from httpx._main import main  # the real one: the stub is gone from sys.modules

        return main(*args, **kwargs)

    _stub.main = _main  # type: ignore[attr-defined]
    sys.modules["httpx._main"] = _stub
    try:
        import httpx
    finally:
        if sys.modules.get("httpx._main") is _stub:
            del sys.modules["httpx._main"]
    if getattr(httpx, "_main", None) is _stub:
        del httpx._main
