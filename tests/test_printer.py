"""Printer tests: canonical output, and parse(print(ast)) == ast on generated and conformance programs."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _paths import conformance_dir, conformance_files
from strategies import exprs, programs
from whenthen.grammar import ast
from whenthen.grammar.parser import parse, parse_expr
from whenthen.grammar.printer import format_duration, format_float, print_expr, print_file, print_item
from whenthen.source import Source

CONFORMANCE = conformance_dir()
CONFORMANCE_FILES = conformance_files("**/*.rules")


def reparse(text: str, name: str = "gen.rules") -> ast.File:
    file, diags = parse(Source(name, text))
    assert diags == [], [d.render(text) for d in diags]
    return file


@settings(max_examples=100, deadline=None)
@given(programs())
def test_parse_print_round_trip_on_generated_programs(program: tuple[str, ast.File]) -> None:
    text, file = program
    assert reparse(text) == file


def one_line_layout(file: ast.File, keep_end: bool) -> str:
    """The same program with every rule on one line (`;` between statements), `end` optional."""
    texts = []
    for item in file.items:
        text = print_item(item)
        if isinstance(item, ast.Rule):
            lines = [line.strip() for line in text.split("\n")]
            then = lines.index("then")
            text = " ".join(lines[: then + 1]) + " " + "; ".join(lines[then + 1 : -1])
            text += " end" if keep_end else ""
        texts.append(text)
    return "\n".join(texts) + "\n"


@settings(max_examples=60, deadline=None)
@given(programs(), st.booleans())
def test_one_line_layout_parses_to_the_same_program(program: tuple[str, ast.File], keep_end: bool) -> None:
    _, file = program
    assert reparse(one_line_layout(file, keep_end)) == file


@settings(max_examples=200, deadline=None)
@given(exprs())
def test_print_expr_round_trip(expr: ast.Expr) -> None:
    text = print_expr(expr)
    parsed, diags = parse_expr(text)
    assert diags == [], (text, diags)
    assert parsed == expr, text


@pytest.mark.parametrize("path", CONFORMANCE_FILES, ids=lambda p: str(p.relative_to(CONFORMANCE)))
def test_conformance_files_round_trip(path: Path) -> None:
    original = reparse(path.read_text(encoding="utf-8"), path.name)
    printed = print_file(original)
    again = reparse(printed, path.name)
    assert again == original
    assert print_file(again) == printed  # canonical: printing is a fixed point


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("a + b * c", "a + b * c"),
        ("(a + b) * c", "(a + b) * c"),
        ("a - (b - c)", "a - (b - c)"),
        ("(a - b) - c", "a - b - c"),
        ("not (a and b) or c", "not (a and b) or c"),
        ("not a = b", "not a = b"),
        ("(not a) = b", "(not a) = b"),
        ("(a = b) = c", "(a = b) = c"),
        ("a == 'x'", "a = 'x'"),
        ("-(a.b)", "-a.b"),
        ("(-a).b", "(-a).b"),
        ("x not in ['a', 'b']", "x not in ['a', 'b']"),
        ("name starts with 'J' and name ends with 'n'", "name starts with 'J' and name ends with 'n'"),
        ("(a or b) and c", "(a or b) and c"),
        ("a + b is not null", "a + b is not null"),
        ("(a is null) = true", "(a is null) = true"),
        ("f(x, y: 1)", "f(x, y: 1)"),
        ("\"Hi {first_name}, {{braces}} \\\"q\\\"\"", "\"Hi {first_name}, {{braces}} \\\"q\\\"\""),
        ("'it\\'s'", "'it\\'s'"),
        ("'^\\d{5}$'", "'^\\\\d{5}$'"),
        ("2026-12-01T09:00:00+01:00", "2026-12-01T09:00+01:00"),
        ("2026-12-01T09:00:30.500Z", "2026-12-01T09:00:30.5Z"),
    ],
)
def test_print_expr_is_canonical(source: str, expected: str) -> None:
    expr, diags = parse_expr(source)
    assert diags == []
    assert print_expr(expr) == expected
    assert parse_expr(expected)[0] == expr


def test_format_helpers() -> None:
    assert format_duration(5400) == "1h30m"
    assert format_duration(0) == "0s"
    assert format_duration(694861) == "1w1d1h1m1s"
    assert format_float(1e20) == "100000000000000000000.0"
    assert float(format_float(1.5e-7)) == 1.5e-7


def test_print_file_layout() -> None:
    text = (
        'timezone "Europe/Paris"\n'
        "trigger guest.added { id: str, company: { name: str }?, category: 'VIP' | 'Press'? }\n"
        "action create_form(template: str = 'x', n: int = -1) -> { id: str }\n"
        "when guest.added where category = 'VIP' exit when guest.removed where id = guest.id "
        "then if a then stop elif b then wait 1h else wait until 2026-12-01 end; let r = wait for a.b within 2d\n"
        "when every monday at 09:00 then switch case a then f() else g() end\n"
    )
    printed = print_file(reparse(text, "t.rules"))
    assert printed == (
        'timezone "Europe/Paris"\n\n'
        "trigger guest.added {\n  id: str\n  company: { name: str }?\n  category: 'VIP' | 'Press'?\n}\n\n"
        "action create_form(template: str = 'x', n: int = -1) -> { id: str }\n\n"
        "when guest.added\nwhere category = 'VIP'\nexit when guest.removed where id = guest.id\nthen\n"
        "  if a then\n    stop\n  elif b then\n    wait 1h\n  else\n    wait until 2026-12-01\n  end\n"
        "  let r = wait for a.b within 2d\nend\n\n"
        "when every monday at 09:00\nthen\n  switch\n  case a then\n    f()\n  else\n    g()\n  end\nend\n"
    )
    assert reparse(printed, "t.rules") == reparse(text, "t.rules")
