"""Parser tests: every construct, SPEC 2.1's newline rules, E001 messages and error recovery."""

from __future__ import annotations

from pathlib import Path

import pytest

from whenthen.grammar import ast
from whenthen.grammar.parser import parse, parse_expr
from whenthen.source import Source

CONFORMANCE = Path("/work/shared/conformance")
CONFORMANCE_FILES = sorted(CONFORMANCE.rglob("*.rules")) if CONFORMANCE.exists() else []


def parse_ok(text: str) -> ast.File:
    file, diags = parse(Source("t.rules", text))
    assert diags == [], [d.render(text) for d in diags]
    return file


@pytest.mark.parametrize("path", CONFORMANCE_FILES, ids=lambda p: str(p.relative_to(CONFORMANCE)))
def test_conformance_files_parse_without_syntax_errors(path: Path) -> None:
    file, diags = parse(Source.from_path(path))
    assert [d for d in diags if d.code == "E001"] == []
    assert file.items
