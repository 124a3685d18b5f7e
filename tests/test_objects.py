"""Object literals (SPEC 2.3): parse and print, type checking, bytecode, running and simulate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from _vm_support import T0, RecordingHost, actions, only_rule, run_all
from whenthen.compiler.checker import check_program
from whenthen.compiler.dis import disassemble
from whenthen.grammar import ast
from whenthen.grammar.parser import parse_expr
from whenthen.grammar.printer import print_expr
from whenthen.runtime.simulate import jsonl_line, simulate
from whenthen.runtime.vm import Done
from whenthen.source import Source

SCHEMA = """
trigger order.placed { id: str, amount: float, placed_at: datetime, who: { name: str, vip: bool? } }
trigger order.noted { info: { name: str, vip: bool? }, n: int }
"""


def diagnostics(body: str) -> list[tuple[str, int, str]]:
    text = SCHEMA + f'rule "r" when order.placed then\n{body}\nend\n'
    program = check_program([Source("t.rules", text)])
    return [(d.code, d.span.line - 4, d.message) for d in program.diagnostics]


def test_parse_and_print() -> None:
    expr, diags = parse_expr("{text: \"New {id}\", amount: amount, tags: ['a'], at: event.at, nested: {times: 1}}")
    assert diags == []
    assert isinstance(expr, ast.ObjectLit)
    assert [f.name for f in expr.fields] == ["text", "amount", "tags", "at", "nested"]
    printed = print_expr(expr)
    assert printed == "{text: \"New {id}\", amount: amount, tags: ['a'], at: event.at, nested: {times: 1}}"
    assert parse_expr(printed)[0] == expr
    assert parse_expr("{}")[0] == ast.ObjectLit(())
    # a newline inside braces separates fields like a comma
    assert parse_expr("{a: 1\n b: 2}")[0] == parse_expr("{a: 1, b: 2}")[0]


def test_json_nested_object_and_dotted_reads_check() -> None:
    assert diagnostics(
        "webhook(url: 'http://x', body: {text: \"New order {id}\", amount: amount, when_: placed_at})\n"
        "let o = {a: 1, b: {c: 'x'}}\n"
        "log(message: \"{o.b.c} {o.a + 1}\")\n"
        "emit order.noted(info: {name: who.name}, n: o.a)"
    ) == []


@pytest.mark.parametrize(
    ("body", "code", "fragment"),
    [
        ("emit order.noted(info: {name: 3}, n: 1)", "E103", "field 'name' expects str, got int"),
        ("emit order.noted(info: {name: 'a', nmae: 'x'}, n: 1)", "E105", "did you mean 'name'?"),
        ("emit order.noted(info: {vip: true}, n: 1)", "E106", "missing field 'name'"),
        ("let o = {a: 1, a: 2}", "E110", "duplicate key 'a'"),
        ("let o = {a: 1}\nlog(message: \"{o.b}\")", "E102", "unknown field 'b'"),
        ("let o = {a: 1}\nlog(message: o)", "E103", "message"),
        ("log(message: \"{ {a: 1} }\")", "E001", ""),
    ],
)
def test_errors(body: str, code: str, fragment: str) -> None:
    found = diagnostics(body)
    assert any(c == code and fragment in m for c, _, m in found), found


def test_bytecode_builds_the_object_and_the_run_passes_it() -> None:
    code = only_rule(SCHEMA + 'rule "r" when order.placed then\n'
                     "  let o = {id: id, n: 2, who: {name: who.name}}\n"
                     "  webhook(url: 'http://x', body: o)\n"
                     "  log(message: \"{o.who.name}/{o.n}\")\nend\n")
    assert "BUILD_OBJECT" in disassemble(code) and "({name})" in disassemble(code)
    host = RecordingHost()
    event = {"id": "A1", "amount": 1.0, "placed_at": T0, "who": {"name": "Ann", "vip": None}}
    result, _ = run_all(code, event, host, snapshot=True)
    assert isinstance(result, Done)
    calls = actions(host)
    assert calls[0][0] == "webhook" and calls[0][1]["body"] == {"id": "A1", "n": 2, "who": {"name": "Ann"}}
    assert calls[1][1] == {"message": "Ann/2"}


def test_simulate_renders_datetimes_in_a_json_body(tmp_path: Path) -> None:
    rules = tmp_path / "r.rules"
    rules.write_text(SCHEMA + 'rule "post" when order.placed then\n'
                     "  webhook(url: 'http://127.0.0.1:9/x', body: {text: \"New order {id}\", at: placed_at})\n"
                     "  emit order.noted(info: {name: who.name}, n: 1)\nend\n")
    events = tmp_path / "e.jsonl"
    events.write_text(json.dumps({"trigger": "order.placed", "at": "2026-12-01T09:00:00Z", "data": {
        "id": "A1", "amount": 12.5, "placed_at": "2026-12-01T09:00:00Z", "who": {"name": "Ann"}}}) + "\n")
    result = simulate([rules], events)
    lines = [json.loads(jsonl_line(record)) for record in result.trace]
    webhook = next(x for x in lines if x.get("action") == "webhook")
    assert webhook["args"]["body"] == {"text": "New order A1", "at": "2026-12-01T09:00:00Z"}
    emit = next(x for x in lines if x["kind"] == "emit")
    assert emit["data"]["info"] == {"name": "Ann", "vip": None}
