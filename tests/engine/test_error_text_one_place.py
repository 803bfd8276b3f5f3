"""The server's human-readable text is read in one place (engine/answers.py): the status and
stable fields decide first everywhere else; a presigned confirm's per-file error, which
the API gives as text only, is classified there too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from synapse_tui import engine
from synapse_tui.engine.answers import confirm_refusal

ENGINE = Path(engine.__file__).parent
# Substring tests that read no server's human text, and why.
NOT_SERVER_TEXT = {
    "journal.py": "SQLite's own error text (database is locked)",
    "journal_files.py": "SQLite's own error text (database is locked)",
    "journal_writer.py": "SQLite's own error text",
    "proxy.py": "the proxy URL the user gave",
    "transport.py": "HTTP header tokens (chunked, close), not text",
}


@pytest.mark.parametrize(
    ("error", "kind"),
    [  # what the embedded backend answers (server/presigned.py), and the real API's kinds
        ("checksum mismatch: storage holds SHA1 ab12; object deleted", "checksum"),
        ("already confirmed with another checksum", "checksum"),
        ("nothing was uploaded to this key", "again"),
        ("storage holds 3 bytes, not 5", "again"),
        ("multipart: expected parts 1 to 4, each once", "again"),
        ("unknown file key", "again"),
        ("File was not uploaded", "again"),
        ("size differs from the 5 bytes announced", "refused"),
        ("refused", "refused"),
    ],
)
def test_a_confirm_error_is_classified(error: str, kind: str) -> None:
    assert confirm_refusal(error) == kind


TEXT_NAMES = {"lowered", "text", "message", "detail", "error", "reason", "body", "answer"}


def _is_text(node: ast.expr) -> bool:
    """An expression that holds text to search: a variable of such a name, `x.lower()`,
    or `str(x)`."""
    if isinstance(node, ast.Name):
        return node.id in TEXT_NAMES
    if isinstance(node, ast.Call):
        func = node.func
        return (isinstance(func, ast.Attribute) and func.attr == "lower") or (
            isinstance(func, ast.Name) and func.id == "str"
        )
    return False


def _text_tests(path: Path) -> list[int]:
    """Lines where something is looked for `in` a text: a substring test."""
    return [
        node.lineno
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Compare)
        and any(isinstance(o, ast.In | ast.NotIn) for o in node.ops)
        and any(_is_text(c) for c in node.comparators)
    ]


def test_substrings_of_text_are_looked_for_in_answers_py_only() -> None:
    found = {
        p.name: _text_tests(p)
        for p in sorted(ENGINE.glob("*.py"))
        if p.name not in NOT_SERVER_TEXT and _text_tests(p)
    }
    assert set(found) == {"answers.py"}, found
