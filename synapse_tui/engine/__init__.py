"""The upload engine: stdlib, httpx and xxhash only; never Textual or Rich."""

from __future__ import annotations

import sys
import types

# httpx's package init imports its optional command-line client, `httpx._main`, which loads
# rich, pygments and click whenever they are installed (Textual brings them). The engine
# needs none of it, so it stands in an empty module before httpx is first imported. This
# keeps the engine free of Rich (a test proves it) and saves a tenth of a second at start.
if "httpx" not in sys.modules and "httpx._main" not in sys.modules:
    _stub = types.ModuleType("httpx._main")
    _stub.main = lambda *args, **kwargs: None  # type: ignore[attr-defined]
    sys.modules["httpx._main"] = _stub
