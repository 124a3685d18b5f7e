"""Parser tests: every construct, SPEC 2.1's newline rules, E001 messages and error recovery."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lark import Lark

from _paths import conformance_dir, conformance_files
from strategies import programs
from whenthen.grammar import ast
from whenthen.grammar.parser import parse, parse_expr
from whenthen.grammar.postlex import PostLexer
from whenthen.source import Source

CONFORMANCE = conformance_dir()
CONFORMANCE_FILES = conformance_files("**/*.rules")

A, B, C, X = (ast.Name(n) for n in "abcx")


def parse_ok(text: str) -> ast.File:
    file, diags = parse(Source("t.rules", text))
    assert diags == [], [d.render(text) for d in diags]
    return file


def expr(text: str) -> ast.Expr:
    node, diags = parse_expr(text)
    assert diags == [], diags
    assert node is not None
    return node


def body(text: str) -> tuple[ast.Stmt, ...]:
    """The statements of a one-rule file whose body is `text`."""
    (rule,) = parse_ok(f"when a.b then\n{text}\nend\n").items
    assert isinstance(rule, ast.Rule)
    return rule.body


def errors(text: str) -> list[tuple[int, int, str]]:
    file, diags = parse(Source("t.rules", text))
    assert all(d.code == "E001" for d in diags)
    return [(d.line, d.column, d.message) for d in diags]


def call(name: str, *args: ast.Arg) -> ast.Call:
    return ast.Call(name, tuple(args))


# ----------------------------------------------------------------------------- the grammar itself


def test_grammar_has_no_conflicts_under_strict_mode() -> None:
    pytest.importorskip("interegular")
    Lark.open_from_package(
        "whenthen.grammar", "whenthen.lark", parser="lalr", lexer="basic", postlex=PostLexer(),
        start=["file", "expr"], keep_all_tokens=True, maybe_placeholders=False, strict=True,
    )


@pytest.mark.parametrize("path", CONFORMANCE_FILES, ids=lambda p: str(p.relative_to(CONFORMANCE)))
def test_conformance_files_parse_without_syntax_errors(path: Path) -> None:
    file, diags = parse(Source.from_path(path))
    assert [d for d in diags if d.code == "E001"] == []
    assert file.items


# ----------------------------------------------------------------------------- declarations


def test_trigger_declaration_with_every_type_form() -> None:
    (decl,) = parse_ok(
        "trigger guest.added {\n"
        "  id: str\n"
        "  category: 'VIP' | 'Visitor'\n"
        "    | 'Press'     # an enumeration continues after `|`\n"
        "  kind: 'a' | 'b'?\n"
        "  company: str?\n"
        "  tags: list[str]\n"
        "  address: {\n    street: str\n    zip: int?\n  }\n"
        "  at: datetime, end: date\n"
        "}\n"
    ).items
    assert decl == ast.TriggerDecl("guest.added", (
        ast.FieldDecl("id", ast.NamedType("str")),
        ast.FieldDecl("category", ast.EnumType(("VIP", "Visitor", "Press"))),
        ast.FieldDecl("kind", ast.OptionalType(ast.EnumType(("a", "b")))),
        ast.FieldDecl("company", ast.OptionalType(ast.NamedType("str"))),
        ast.FieldDecl("tags", ast.ListType(ast.NamedType("str"))),
        ast.FieldDecl("address", ast.ObjectType((
            ast.FieldDecl("street", ast.NamedType("str")),
            ast.FieldDecl("zip", ast.OptionalType(ast.NamedType("int"))),
        ))),
        ast.FieldDecl("at", ast.NamedType("datetime")),
        ast.FieldDecl("end", ast.NamedType("date")),
    ))


def test_trigger_names_may_use_keywords_and_need_two_segments() -> None:
    (decl,) = parse_ok("trigger action.failed { rule: str, action: str }").items
    assert decl.name == "action.failed"
    assert [f.name for f in decl.fields] == ["rule", "action"]
    assert errors("trigger ping { n: int }") == [(1, 14, "expected '.', found '{'")]


def test_empty_trigger_and_trailing_commas() -> None:
    a, b = parse_ok("trigger a.b {}\ntrigger c.d { x: int, }").items
    assert a.fields == ()
    assert [f.name for f in b.fields] == ["x"]


def test_action_declarations() -> None:
    a, b, c = parse_ok(
        "action set_status(guest_id: str, status: str)\n"
        "action create_form(template: str) -> { id: str, url: str }\n"
        "action send(to: str, body: str = '', retries: int = -1, tags: list[str] = ['a'], when: float? = null)\n"
    ).items
    assert a == ast.ActionDecl("set_status", (
        ast.Param("guest_id", ast.NamedType("str"), None), ast.Param("status", ast.NamedType("str"), None)), None)
    assert b.result == ast.ObjectType((ast.FieldDecl("id", ast.NamedType("str")),
                                       ast.FieldDecl("url", ast.NamedType("str"))))
    assert [p.default for p in c.params] == [
        None, ast.StrLit(""), ast.Unary("-", ast.IntLit(1)), ast.ListLit((ast.StrLit("a"),)), ast.NullLit()]
    assert c.params[4].name == "when"


def test_parameter_defaults_must_be_literals() -> None:
    assert errors("action f(x: int = y)") == [(1, 19, "a parameter default must be a literal")]


def test_timezone_only_first() -> None:
    file = parse_ok('# a comment first is fine\ntimezone "Europe/Paris"\ntrigger a.b {}')
    assert file.timezone == "Europe/Paris"
    file, diags = parse(Source("t.rules", 'trigger a.b {}\ntimezone "Europe/Paris"\n'))
    assert [(d.line, d.code) for d in diags] == [(2, "E001")]
    assert "before anything else" in diags[0].message
    assert file.timezone is None and len(file.items) == 1


# ----------------------------------------------------------------------------- rules and headers


def test_multi_line_header_with_name_where_and_exits() -> None:
    (rule,) = parse_ok(
        'rule "Cart reminder"\n'
        "when cart.abandoned\n"
        "where total >= 20\n"
        "  and email is not empty\n"
        "exit when order.placed where customer_id = cart.customer_id\n"
        "exit when cart.emptied\n"
        "then\n"
        "  wait 1h\n"
        "end\n"
    ).items
    assert rule.name == "Cart reminder"
    assert rule.when == ast.TriggerRef("cart.abandoned")
    assert rule.where == ast.Binary("and", ast.Binary(">=", ast.Name("total"), ast.IntLit(20)),
                                    ast.Is(ast.Name("email"), "empty", True))
    assert rule.exits == (
        ast.ExitClause(ast.TriggerRef("order.placed"),
                       ast.Binary("=", ast.Name("customer_id"), ast.Attr(ast.Name("cart"), "customer_id"))),
        ast.ExitClause(ast.TriggerRef("cart.emptied"), None),
    )
    assert rule.body == (ast.Wait(ast.DurationLit(3600)),)
    assert (rule.name_span.line, rule.name_span.column) == (1, 6)
    assert rule.when_span.line == 2


def test_one_line_form_with_semicolons_and_no_end() -> None:
    first, second = parse_ok(
        "when guest.added where category = 'Press' then send_email(to: email); wait 2d; stop\n"
        'rule "Ping" when ping.sent then emit pong.sent(n: n)\n'
    ).items
    assert first.name is None
    assert first.when_span.line == 1
    assert [type(s) for s in first.body] == [ast.CallStmt, ast.Wait, ast.Stop]
    assert second.body == (ast.Emit("pong.sent", (ast.Arg("n", ast.Name("n")),)),)


def test_optional_end_closes_at_the_next_item_or_eof() -> None:
    items = parse_ok(
        "when a.b then\n  if x then\n    stop\n  end\n  wait 1h\n"
        "trigger c.d { n: int }\n"
        "when c.d then\n  log(message: 'x')\n"
        "action f()\n"
        "when e.f then\n  switch n\n  case 1 then stop\n  end\n"
    ).items
    assert [type(i) for i in items] == [ast.Rule, ast.TriggerDecl, ast.Rule, ast.ActionDecl, ast.Rule]
    assert [type(s) for s in items[0].body] == [ast.If, ast.Wait]
    assert isinstance(items[4].body[0], ast.Switch)


def test_unnamed_rule_when_span_is_the_line_of_when() -> None:
    (rule,) = parse_ok("\n\n\nwhen guest.added\n  where x = 1\nthen stop").items
    assert rule.name is None
    assert (rule.when_span.line, rule.when_span.column) == (4, 1)


def test_empty_bodies_and_branches() -> None:
    (rule,) = parse_ok("when a.b then\nend").items
    assert rule.body == ()
    (stmt,) = body("if x then\nelif y then\nelse\nend")
    assert stmt == ast.If((ast.IfBranch(X, ()), ast.IfBranch(ast.Name("y"), ())), ())


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("every 1h", ast.Every(3600)),
        ("every 1h30m", ast.Every(5400)),
        ("every day at 09:00", ast.EveryAt("day", dt.time(9, 0))),
        ("every monday at 17:45", ast.EveryAt("monday", dt.time(17, 45))),
        ('cron "0 9 * * 1"', ast.Cron("0 9 * * 1")),
        ('cron "{0} 9 * * *"', ast.Cron("{0} 9 * * *")),  # plain string: no templating
        ("at 2026-12-01T09:00", ast.At(dt.datetime(2026, 12, 1, 9, 0))),
        ("at 2026-12-01T09:00:00Z", ast.At(dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC))),
    ],
)
def test_schedules(source: str, expected: ast.Schedule) -> None:
    (rule,) = parse_ok(f"when {source} then log(message: 'tick {{event.at}}')").items
    assert rule.when == expected


def test_invalid_time_of_day_is_reported() -> None:
    assert errors("when every day at 24:00 then stop") == [(1, 19, "invalid time of day '24:00'")]


def test_rule_names_are_plain_strings() -> None:
    (rule,) = parse_ok('rule "Say {hi} \\"there\\"" when a.b then stop').items
    assert rule.name == 'Say {hi} "there"'


# ----------------------------------------------------------------------------- statements


def test_every_statement() -> None:
    stmts = body(
        "send_email(to: email, subject: 'x')\n"
        "let form = create_form(template: 'intake')\n"
        "let n = len(tags) + 1\n"
        "wait 24h\n"
        "wait until starts_at - 1h\n"
        "let reply = wait for message.received where thread = message.thread within 24h\n"
        "wait for form.submitted\n"
        "emit loyalty.nurture(source: 'x', guest_id: id)\n"
        "emit ping.sent()\n"
        "stop\n"
    )
    assert stmts == (
        ast.CallStmt(call("send_email", ast.Arg("to", ast.Name("email")), ast.Arg("subject", ast.StrLit("x")))),
        ast.Let("form", call("create_form", ast.Arg("template", ast.StrLit("intake")))),
        ast.Let("n", ast.Binary("+", call("len", ast.Arg(None, ast.Name("tags"))), ast.IntLit(1))),
        ast.Wait(ast.DurationLit(86400)),
        ast.WaitUntil(ast.Binary("-", ast.Name("starts_at"), ast.DurationLit(3600))),
        ast.Let("reply", ast.WaitFor(
            "message.received",
            ast.Binary("=", ast.Name("thread"), ast.Attr(ast.Name("message"), "thread")),
            ast.DurationLit(86400))),
        ast.WaitFor("form.submitted", None, None),
        ast.Emit("loyalty.nurture", (ast.Arg("source", ast.StrLit("x")), ast.Arg("guest_id", ast.Name("id")))),
        ast.Emit("ping.sent", ()),
        ast.Stop(),
    )


def test_if_elif_else_and_nesting() -> None:
    (stmt,) = body(
        "if a then\n  if b then stop end\nelif c then\n  wait 1h\nelse\n  log(message: 'x')\nend"
    )
    assert stmt == ast.If(
        (ast.IfBranch(A, (ast.If((ast.IfBranch(B, (ast.Stop(),)),), None),)),
         ast.IfBranch(C, (ast.Wait(ast.DurationLit(3600)),))),
        (ast.CallStmt(call("log", ast.Arg("message", ast.StrLit("x")))),),
    )


def test_switch_with_and_without_subject() -> None:
    with_subject, without = body(
        "switch form\ncase 'intake' then f()\ncase 'signup', 'trial' then g(); h()\nelse stop\nend\n"
        "switch\n  case score >= 80 then f()\n  case score >= 50 then\n    g()\nend"
    )
    assert with_subject == ast.Switch(
        ast.Name("form"),
        (ast.Case((ast.StrLit("intake"),), (ast.CallStmt(call("f")),)),
         ast.Case((ast.StrLit("signup"), ast.StrLit("trial")), (ast.CallStmt(call("g")), ast.CallStmt(call("h"))))),
        (ast.Stop(),),
    )
    assert without.subject is None
    assert [c.values for c in without.cases] == [
        (ast.Binary(">=", ast.Name("score"), ast.IntLit(80)),), (ast.Binary(">=", ast.Name("score"), ast.IntLit(50)),)]


def test_one_line_if_and_switch() -> None:
    stmts = body("if x then log(message: 'x') end; switch x case 1 then f() else g() end")
    assert [type(s) for s in stmts] == [ast.If, ast.Switch]


# ----------------------------------------------------------------------------- newline rules


def test_newline_continues_after_and_or_operators_and_commas() -> None:
    stmts = body(
        "if a and\n   b or\n   c then stop end\n"
        "let n = 1 +\n  2 *\n  3\n"
        "let ok = x =\n  1\n"
        "f(a,\n  b)\n"
        "let xs = [\n  1,\n  2\n]\n"
        "wait for x.y where a contains\n  'q'\n"
    )
    assert stmts[0].branches[0].cond == ast.Binary("or", ast.Binary("and", A, B), C)
    assert stmts[1] == ast.Let("n", ast.Binary("+", ast.IntLit(1), ast.Binary("*", ast.IntLit(2), ast.IntLit(3))))
    assert stmts[2] == ast.Let("ok", ast.Binary("=", X, ast.IntLit(1)))
    assert stmts[3] == ast.CallStmt(call("f", ast.Arg(None, A), ast.Arg(None, B)))
    assert stmts[4] == ast.Let("xs", ast.ListLit((ast.IntLit(1), ast.IntLit(2))))
    assert stmts[5] == ast.WaitFor("x.y", ast.Binary("contains", A, ast.StrLit("q")), None)


def test_newline_ends_a_statement_elsewhere_in_a_body() -> None:
    assert errors("when a.b then\n  if a\n  and b then stop end\n") == [
        (2, 7, "expected 'then', found the end of the line")]


def test_empty_statements_are_skipped() -> None:
    assert body(";;\n\n  stop ;; ;\n\n; stop;\n# comment\n") == (ast.Stop(), ast.Stop())


def test_statements_on_one_line_need_a_separator() -> None:
    assert errors("when a.b then f() g()") == [(1, 19, "expected 'end' or a new line, found name 'g'")]


def test_semicolon_outside_a_body_is_an_error() -> None:
    ((line, col, message),) = errors("trigger a.b { x: int };")
    assert (line, col) == (1, 23) and "';'" in message


# ----------------------------------------------------------------------------- keywords as names


def test_keywords_are_whole_words() -> None:
    assert expr("andy = orla") == ast.Binary("=", ast.Name("andy"), ast.Name("orla"))
    assert expr("ending is null") == ast.Is(ast.Name("ending"), "null", False)


def test_keywords_as_names_after_and_before_dots_and_before_colons() -> None:
    (rule,) = parse_ok(
        "when action.failed where action.rule = 'x' and event.at > 2026-01-01\n"
        "then\n  notify(rule: action.rule, at: event.at, end: 1)\n  wait for rule.end.when\n"
    ).items
    assert rule.when == ast.TriggerRef("action.failed")
    assert rule.where.left.left == ast.Attr(ast.Name("action"), "rule")
    assert rule.where.right.left == ast.Attr(ast.Name("event"), "at")
    assert [a.name for a in rule.body[0].call.args] == ["rule", "at", "end"]
    assert rule.body[1] == ast.WaitFor("rule.end.when", None, None)


def test_a_bare_keyword_is_not_a_name() -> None:
    ((_line, col, message),) = errors("when a.b where at = 1 then stop")
    assert col == 16 and message.startswith("expected an expression")
    assert message.endswith("('at' is a keyword; a field of that name is written event.at)")


# ----------------------------------------------------------------------------- expressions


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("a or b and c", ast.Binary("or", A, ast.Binary("and", B, C))),
        ("(a or b) and c", ast.Binary("and", ast.Binary("or", A, B), C)),
        ("not a and b", ast.Binary("and", ast.Unary("not", A), B)),
        ("not a = b", ast.Unary("not", ast.Binary("=", A, B))),
        ("not not a", ast.Unary("not", ast.Unary("not", A))),
        ("a = b + c", ast.Binary("=", A, ast.Binary("+", B, C))),
        ("a + b * c", ast.Binary("+", A, ast.Binary("*", B, C))),
        ("a - b - c", ast.Binary("-", ast.Binary("-", A, B), C)),
        ("a * b % c", ast.Binary("%", ast.Binary("*", A, B), C)),
        ("-a * b", ast.Binary("*", ast.Unary("-", A), B)),
        ("-a.b", ast.Unary("-", ast.Attr(A, "b"))),
        ("- -1", ast.Unary("-", ast.Unary("-", ast.IntLit(1)))),
        ("a == b", ast.Binary("=", A, B)),
        ("a != b", ast.Binary("!=", A, B)),
        ("a <= b", ast.Binary("<=", A, B)),
        ("a >= b", ast.Binary(">=", A, B)),
        ("a < b", ast.Binary("<", A, B)),
        ("a > b", ast.Binary(">", A, B)),
        ("a contains 'x'", ast.Binary("contains", A, ast.StrLit("x"))),
        ("a starts with 'x'", ast.Binary("starts with", A, ast.StrLit("x"))),
        ("a ends with 'x'", ast.Binary("ends with", A, ast.StrLit("x"))),
        ("a in ['x', 'y']", ast.Binary("in", A, ast.ListLit((ast.StrLit("x"), ast.StrLit("y"))))),
        ("a not in b", ast.Binary("not in", A, B)),
        ("a matches '^\\d{5}$'", ast.Binary("matches", A, ast.StrLit("^\\d{5}$"))),
        ("a is null", ast.Is(A, "null", False)),
        ("a is not null", ast.Is(A, "null", True)),
        ("a is empty", ast.Is(A, "empty", False)),
        ("a is not empty", ast.Is(A, "empty", True)),
        ("a + 1 is null", ast.Is(ast.Binary("+", A, ast.IntLit(1)), "null", False)),
        ("company.name.first", ast.Attr(ast.Attr(ast.Name("company"), "name"), "first")),
        ("lower(trim(a))", call("lower", ast.Arg(None, call("trim", ast.Arg(None, A))))),
        ("coalesce(a, b: 1,)", call("coalesce", ast.Arg(None, A), ast.Arg("b", ast.IntLit(1)))),
        ("now()", call("now")),
        ("[]", ast.ListLit(())),
        ("(a)", A),
    ],
)
def test_expressions_and_precedence(source: str, expected: ast.Expr) -> None:
    assert expr(source) == expected


def test_comparisons_do_not_chain() -> None:
    _, diags = parse_expr("a = b = c")
    assert [(d.column, d.code) for d in diags] == [(7, "E001")]


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("42", ast.IntLit(42)),
        ("3.5", ast.FloatLit(3.5)),
        ("-3.5", ast.Unary("-", ast.FloatLit(3.5))),
        ("true", ast.BoolLit(True)),
        ("false", ast.BoolLit(False)),
        ("null", ast.NullLit()),
        ("90s", ast.DurationLit(90)),
        ("15m", ast.DurationLit(900)),
        ("1w", ast.DurationLit(604800)),
        ("1w2d3h4m5s", ast.DurationLit(604800 + 2 * 86400 + 3 * 3600 + 4 * 60 + 5)),
        ("2026-12-01", ast.DateLit(dt.date(2026, 12, 1))),
        ("2026-12-01T09:00", ast.DateTimeLit(dt.datetime(2026, 12, 1, 9, 0))),
        ("2026-12-01T09:00:05.25", ast.DateTimeLit(dt.datetime(2026, 12, 1, 9, 0, 5, 250000))),
        ("2026-12-01T09:00:00Z", ast.DateTimeLit(dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC))),
        ("2026-12-01T09:00:00+01:00",
         ast.DateTimeLit(dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=1))))),
        ("'it\\'s \\\\ \\d'", ast.StrLit("it's \\ \\d")),
        ("'{not a template}'", ast.StrLit("{not a template}")),
    ],
)
def test_literals(source: str, expected: ast.Expr) -> None:
    assert expr(source) == expected


def test_aware_datetime_keeps_its_offset() -> None:
    value = expr("2026-12-01T09:00:00-05:30").value
    assert value.utcoffset() == -dt.timedelta(hours=5, minutes=30)


@pytest.mark.parametrize("source", ["1h1d", "1h1h", "1.5h", "24hours", "2026-12-01T9:00"])
def test_malformed_durations_and_datetimes(source: str) -> None:
    node, diags = parse_expr(source)
    assert node is None and [d.code for d in diags] == ["E001"]


# ----------------------------------------------------------------------------- templates


def test_templates() -> None:
    assert expr('"Hi {first_name}!"') == ast.Template(("Hi ", ast.Name("first_name"), "!"))
    assert expr('"{a}{b.c}"') == ast.Template((A, ast.Attr(B, "c")))
    assert expr('""') == ast.Template(())
    assert expr('"{{literal}} \\"q\\" \\\\ \\n\\t"') == ast.Template(('{literal} "q" \\ \n\t',))
    assert expr('"total: {a + 1} {lower(\'X}\')} {x is null}"') == ast.Template((
        "total: ", ast.Binary("+", A, ast.IntLit(1)), " ",
        call("lower", ast.Arg(None, ast.StrLit("X}"))), " ", ast.Is(X, "null", False)))


def test_template_expression_spans_point_into_the_file() -> None:
    text = 'when a.b then\n  log(message: "x {first_name + } y")\n'
    assert errors(text) == [(2, 32, "expected an expression, found the end of the input")]
    (rule,) = parse_ok('when a.b then\n  log(message: "x {guest.first_name} {1 + n}")').items
    template = rule.body[0].call.args[0].value
    attr, binary = template.parts[1], template.parts[3]
    assert (attr.span.line, attr.span.column, attr.span.end_column) == (2, 20, 36)
    assert (binary.right.span.line, binary.right.span.column) == (2, 43)


@pytest.mark.parametrize(
    ("source", "column", "message"),
    [
        ('"a \\q"', 4, "unknown escape '\\q'"),
        ('"a } b"', 4, "a lone '}'"),
        ('"a {b"', 4, "'{' in a template is not closed"),
        ('"a {} b"', 5, "expected an expression inside '{}'"),
    ],
)
def test_template_errors(source: str, column: int, message: str) -> None:
    _, diags = parse_expr(source)
    assert [(d.code, d.column) for d in diags] == [("E001", column)]
    assert message in diags[0].message


# ----------------------------------------------------------------------------- syntax errors


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ("when guest.added where category = 'VIP' first_name = 'x' then stop", (1, 41),
         "expected 'then', 'exit when' or 'and'/'or', found name 'first_name'"),
        ("when guest.added where", (1, 23), "expected an expression, found the end of the input"),
        ("when a.b then if x then stop", (1, 29), "expected 'end', 'elif' or 'else', found the end of the input"),
        ("when a.b then emit c.d", (1, 23), "expected '(', found the end of the input"),
        ("when every day then stop", (1, 16), "expected 'at', found 'then'"),
        ("rule 'x' when a.b then stop", (1, 6), "expected a \"…\" string, found string 'x'"),
        ("when a.b then let x = 'abc", (1, 23), "unterminated string (strings end on the same line)"),
        ("when a.b then let x = 1 @ 2", (1, 25), "unexpected character '@'"),
        ("when a.b then wait until 09:00", (1, 26),
         "expected an expression, found time of day '09:00' (used only in schedules)"),
        ("trigger a.b { x: str y: int }", (1, 22), "expected ',', '}', '?' or '[', found name 'y'"),
        ("action f(x: str) -> ", (1, 20), "expected a type, found the end of the input"),
        ("when a.b then\n  else\n", (2, 3), "expected 'end' or a statement, found 'else'"),
        ("when a.b then\n  switch x\n  case 1 then stop\nwhen c.d then stop", (4, 1),
         "expected 'end', 'else' or 'case', found 'when', which starts a new item"),
    ],
)
def test_syntax_error_messages_and_positions(text: str, where: tuple[int, int], message: str) -> None:
    file, diags = parse(Source("t.rules", text))
    assert [(d.file, d.line, d.column, d.code, d.message) for d in diags][:1] == [("t.rules", *where, "E001", message)]


def test_recovery_reports_every_error_and_keeps_good_items() -> None:
    text = (
        "trigger a.b { n: int }\n"                    # 1  fine
        "when a.b where n > then stop\n"              # 2  error
        "rule \"ok\" when a.b then\n  log(message: 'x')\nend\n"  # 3-5 fine
        "when a.b then\n  if n then stop\n"          # 6-7 missing end
        "action f(x: )\n"                            # 8  error (and ends rule 6)
        "rule \"last\" when a.b then stop\n"           # 9  fine
        "end end\n"                                  # 10 error
    )
    file, diags = parse(Source("t.rules", text))
    assert [d.line for d in diags] == [2, 8, 8, 10]
    assert [getattr(i, "name", None) for i in file.items] == ["a.b", "ok", "last"]


def test_a_syntax_error_inside_an_item_drops_only_that_item() -> None:
    file, diags = parse(Source("t.rules", "when a.b then stop\nend\nend\nwhen c.d then stop"))
    assert [d.line for d in diags] == [3]
    assert [i.when.name for i in file.items] == ["a.b", "c.d"]


def test_parse_expr_reports_positions_in_its_own_name() -> None:
    node, diags = parse_expr("a +", name="repl")
    assert node is None
    assert [(d.file, d.line, d.column) for d in diags] == [("repl", 1, 4)]


# ----------------------------------------------------------------------------- spans


def test_every_node_span_covers_its_own_text() -> None:
    text = (CONFORMANCE / "03-no-reply" / "rules.rules").read_text()
    source = Source("t.rules", text)
    file, diags = parse(source)
    assert diags == []
    for node in ast.walk(file):
        span = node.span
        assert span.file == "t.rules"
        assert 0 <= span.start <= span.end <= len(text)
        assert source.line_col(span.start) == (span.line, span.column)
        assert source.line_col(span.end) == (span.end_line, span.end_column)
        if isinstance(node, ast.Name):
            assert text[span.start:span.end] == node.name
        if isinstance(node, ast.StrLit):
            assert text[span.start] == "'"


def test_declaration_name_spans() -> None:
    text = "trigger a.b { n: int }\naction go(x: int)\nwhen a.b then\n  let y = 1\n  emit c.d()\n"
    trig, action, rule = parse_ok(text).items
    assert text[trig.name_span.start:trig.name_span.end] == "a.b"
    assert text[action.name_span.start:action.name_span.end] == "go"
    assert text[rule.body[0].name_span.start:rule.body[0].name_span.end] == "y"
    assert text[rule.body[1].trigger_span.start:rule.body[1].trigger_span.end] == "c.d"


# ----------------------------------------------------------------------------- never raises


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=st.sampled_from(list("when a.b then if end {}()[]'\"\\;:,=\n#x1-.|?")) ) | st.text())
def test_parse_never_raises_on_arbitrary_text(text: str) -> None:
    file, diags = parse(Source("t.rules", text))
    assert isinstance(file, ast.File)
    assert all(d.code == "E001" and d.span.file == "t.rules" for d in diags)
    parse_expr(text)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs(), st.data())
def test_parse_never_raises_on_mutated_programs(program: tuple[str, ast.File], data: st.DataObject) -> None:
    text, _ = program
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(text)))
        cut = data.draw(st.integers(0, 5))
        insert = data.draw(st.sampled_from(["", "\n", "end", "(", "}", "'", '"', "when ", ";", "{", "then"]))
        text = text[:at] + insert + text[at + cut:]
    file, diags = parse(Source("m.rules", text))
    assert isinstance(file, ast.File)
    assert all(0 <= d.span.start <= d.span.end <= len(text) for d in diags)


def test_many_errors_in_a_large_file_are_all_reported() -> None:
    good = 'rule "R{i}"\nwhen a.b\nwhere x = {i}\nthen\n  f(a: 1)\n  wait 1h\nend\n'
    bad = 'rule "B{i}"\nwhen a.b\nwhere x = = {i}\nthen\n  f(a: 1)\nend\n'
    text = "".join((bad if i % 2 else good).format(i=i) for i in range(400))
    file, diags = parse(Source("t.rules", text))
    assert [i.name for i in file.items] == [f"R{i}" for i in range(0, 400, 2)]
    assert len(diags) == 200 and {d.message for d in diags} == {"expected an expression, found '='"}


def test_named_rule_span_starts_at_rule_keyword() -> None:
    from whenthen.compiler.checker import check_program

    text = 'trigger a.b { x: str }\n\nrule "Named"\nwhen a.b\nthen log(message: x)\nend\n'
    source = Source("named.rules", text)
    file, diags = parse(source)
    assert not diags
    rule = file.items[1]
    assert (rule.span.line, rule.span.column) == (3, 1)
    assert (rule.when_span.line, rule.when_span.column) == (4, 1)
    # the stored source of a named rule (shown by `versions`) includes its name
    info = check_program([source]).rules[0]
    assert info.source_text.startswith('rule "Named"') and info.source_text.rstrip().endswith("end")
