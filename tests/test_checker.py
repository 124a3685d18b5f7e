"""Checker tests: one or more per diagnostic code and per scoping rule, side tables, stdlib,
load_sources, the conformance expectations, and hypothesis: no input makes the checker raise."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _models import GUEST_ADDED
from _paths import conformance_dir
from whenthen.compiler import types as T
from whenthen.compiler.checker import check_expr, check_program
from whenthen.compiler.decls import Schema, TriggerSchema
from whenthen.compiler.sources import SourceError, is_source_text, load_sources
from whenthen.grammar import ast
from whenthen.grammar.parser import parse_expr
from whenthen.source import Source
from whenthen.stdlib import default_schema
from whenthen.stdlib.functions import FUNCTIONS, FunctionContext

REPO = Path(__file__).resolve().parent.parent

SCHEMA = GUEST_ADDED + """\
trigger guest.replied { guest_id: str, text: str, thread: str }
trigger form.submitted { form: str, track_id: str, score: int }
action set_status(guest_id: str, status: str)
action set_category(guest_id: str, category: 'VIP' | 'Visitor' | 'Press')
action create_form(template: str) -> { id: str, url: str }
action tag(guest_id: str, tags: list['hot' | 'cold'], note: str? )
"""


def check(body: str, schema: str = SCHEMA):
    """Check `schema` + `body` as one file; returns the program."""
    return check_program([Source("t.rules", schema + body)])


def found(body: str, schema: str = SCHEMA) -> set[tuple[int, str]]:
    """(line relative to the body, code) of every diagnostic."""
    offset = schema.count("\n")
    return {(d.line - offset, d.code) for d in check(body, schema).diagnostics}


def codes(body: str, schema: str = SCHEMA) -> list[str]:
    return [d.code for d in check(body, schema).diagnostics]


def messages(body: str, schema: str = SCHEMA) -> list[str]:
    return [d.message for d in check(body, schema).diagnostics]


def rule(then: str, where: str = "", trigger: str = "guest.added") -> str:
    header = f"when {trigger}" + (f" where {where}" if where else "")
    return f'rule "R"\n{header}\nthen\n{then}\nend\n'


# ----------------------------------------------------------------------------- clean programs


def test_the_schema_and_a_typical_rule_are_clean() -> None:
    program = check(rule(
        "send_email(to: guest.email, subject: \"Welcome {first_name}!\")\n"
        "wait 24h\n"
        "if company != 'Eventmaker' then send_email(to: email, subject: 'agenda') end\n"
        "wait until 2026-12-01T09:00\n"
        "set_status(guest_id: id, status: 'confirmed')",
        where="category = 'VIP' and first_name = 'John'"))
    assert program.diagnostics == []
    assert [r.name for r in program.rules] == ["R"]


def _case_dirs() -> list[Path]:
    return sorted(p for p in conformance_dir().iterdir() if p.is_dir())


@pytest.mark.parametrize("case", [d for d in _case_dirs() if not (d / "expect-diagnostics.json").exists()],
                         ids=lambda p: p.name)
def test_conformance_programs_check_clean(case: Path) -> None:
    folders = [case] if list(case.glob("*.rules")) else sorted(p for p in case.iterdir() if p.is_dir())
    for folder in folders:
        program = check_program(load_sources(folder))
        assert program.diagnostics == [], [d.render() for d in program.diagnostics]


@pytest.mark.parametrize("case", [d for d in _case_dirs() if (d / "expect-diagnostics.json").exists()],
                         ids=lambda p: p.name)
def test_conformance_diagnostics_match_exactly(case: Path) -> None:
    want = json.loads((case / "expect-diagnostics.json").read_text())
    program = check_program(load_sources(case))
    got = {(Path(d.file).name, d.line, d.code, d.severity) for d in program.diagnostics}
    expected = {(x["file"], x["line"], x["code"], "error") for x in want["errors"]}
    expected |= {(x["file"], x["line"], x["code"], "warning") for x in want.get("warnings", [])}
    assert got == expected


def test_examples_check_clean() -> None:
    examples = REPO / "examples"
    if not list(examples.glob("*.rules")):
        pytest.skip("no examples yet")
    program = check_program(load_sources(examples))
    assert program.diagnostics == [], [d.render() for d in program.diagnostics]


# ----------------------------------------------------------------------------- codes


def test_E101_unknown_trigger_everywhere_a_trigger_is_named() -> None:
    body = ("when guest.addded then log(message: 'x')\n"
            "rule \"W\"\nwhen guest.added\nexit when guest.gone\nthen\n"
            "  wait for guest.replyed\n"
            "  emit guest.nothing()\n"
            "end\n")
    assert found(body) == {(1, "E101"), (4, "E101"), (6, "E101"), (7, "E101")}
    assert "did you mean 'guest.added'?" in messages(body)[0]


def test_E101_schedule_trigger_cannot_be_named() -> None:
    assert codes(f"when {ast.SCHEDULE_TRIGGER} then log(message: 'x')\n") == ["E101"]


def test_E101_unknown_start_trigger_does_not_cascade() -> None:
    assert codes("when guest.gone where foo = 1 and bar > 'x' then log(message: \"{baz}\")\n") == ["E101"]


def test_E102_unknown_field_with_hint_in_spec_wording() -> None:
    program = check(rule("stop", where="frist_name = 'John'"))
    [diag] = program.diagnostics
    assert diag.code == "E102"
    assert diag.message == "unknown field 'frist_name' on guest.added; did you mean 'first_name'?"


def test_E102_unknown_nested_field_and_member_of_non_object() -> None:
    assert found(rule("log(message: \"{address.cty}\")\nlog(message: \"{email.x}\")")) == {(4, "E102"), (5, "E102")}


def test_E102_unknown_type_in_declaration() -> None:
    assert codes("trigger a.b { x: strr }\n", schema="") == ["E102"]


def test_E103_operands_waits_conditions_and_arguments() -> None:
    body = rule(
        "wait 'tomorrow'\n"          # 4
        "wait until 42\n"            # 5
        "wait until registered_at\n"  # 6 fine
        "wait registered_at - registered_at\n"  # 7 fine: a duration
        "if age then stop end\n"     # 8 condition not bool
        "set_status(guest_id: 42, status: 'x')\n"  # 9
        "let x = first_name + 1\n"   # 10
        "let y = wait for guest.replied within 'soon'",  # 11
        where="age > 'old'")
    assert found(body) == {(2, "E103"), (4, "E103"), (5, "E103"), (8, "E103"), (9, "E103"), (10, "E103"), (11, "E103")}


def test_E103_comparisons_follow_the_types() -> None:
    assert codes(rule("stop", where="registered_at > 2026-01-01")) == ["E103"]  # date vs datetime
    assert codes(rule("stop", where="tags contains 3")) == ["E103"]
    assert codes(rule("stop", where="age in ['a']")) == ["E103"]
    assert codes(rule("stop", where="email in 'abc'")) == ["E103"]
    assert codes(rule("stop", where="age starts with 'x'")) == ["E103"]
    assert codes(rule("stop", where="age is empty")) == ["E103"]
    assert codes(rule("stop", where="not email")) == ["E103"]
    assert codes(rule("stop", where="email matches first_name")) == ["E103"]


def test_arithmetic_and_comparison_types_that_are_fine() -> None:
    body = rule(
        "wait until registered_at + 1d\n"
        "wait until registered_at - 1h30m\n"
        "wait 2 * 1h\n"
        "wait 1h * 2.5 + 30s\n"
        "let d = date(registered_at) + 2d\n"
        "let f = age / 2\n"
        "if d > today() and f < 3.5 and len(tags) >= 2 and -age < 0 then stop end",
        where="age >= 18 and 80 = 80.0 and company is null and tags is not empty and email ends with '.io'")
    assert check(body).diagnostics == []


def test_E104_unknown_action_or_function_and_function_as_statement() -> None:
    body = rule("send_emial(to: email)\nlog(message: \"{uper(email)}\")\nlower(email)")
    assert found(body) == {(4, "E104"), (5, "E104"), (6, "E104")}
    assert messages(body)[0].endswith("did you mean 'send_email'?")


def test_E105_unknown_twice_too_many_positional_after_named() -> None:
    body = rule(
        "send_email(to: email, subjet: 'x')\n"
        "send_email(to: email, subject: 'a', subject: 'b')\n"
        "log('one', 'two')\n"
        "set_status(guest_id: id, 'x')\n"
        "emit guest.replied(guest_id: id, text: 'x', thread: 't', mood: 'x')")
    assert found(body) == {(4, "E105"), (5, "E105"), (6, "E105"), (7, "E105"), (8, "E105"),
                           (4, "E106"), (7, "E106")}  # the misspelt and the misplaced ones are missing too


def test_E106_missing_arguments_and_emit_fields() -> None:
    body = rule("set_status(guest_id: id)\nemit guest.replied(guest_id: id)\nlet x = coalesce()")
    assert found(body) == {(4, "E106"), (5, "E106"), (6, "E106")}


def test_defaults_and_optional_parameters_may_be_left_out() -> None:
    assert check(rule("send_email(to: email, subject: 'x')\ntag(guest_id: id, tags: ['hot'])\n"
                      "webhook(url: 'http://x')\nsend_message(email, 'hi')")).diagnostics == []


def test_E107_literals_outside_enumerations() -> None:
    body = rule(
        "set_category(guest_id: id, category: 'Speaker')\n"   # 4
        "tag(guest_id: id, tags: ['hot', 'warm'])\n"           # 5
        "switch category\ncase 'VIP', 'Vip' then stop\nend\n"  # 7
        "if category != \"Nope\" then stop end",               # 9
        where="category = 'VPI' or category in ['Press', 'Vistor']")
    assert found(body) == {(2, "E107"), (4, "E107"), (5, "E107"), (7, "E107"), (9, "E107")}
    schema = SCHEMA + "trigger guest.tagged { kind: 'a' | 'b' }\n"
    assert found(rule("emit guest.tagged(kind: 'c')"), schema) == {(4, "E107")}


def test_E107_hint() -> None:
    assert messages(rule("stop", where="category = 'VPI'")) == [
        "'VPI' is not one of 'VIP' | 'Visitor' | 'Press'; did you mean 'VIP'?"]


def test_E108_invalid_regex_checked_at_compile_time() -> None:
    assert codes(rule("stop", where="email matches '([a-z'")) == ["E108"]
    assert codes(rule("stop", where="email matches '^\\d{5}$'")) == []


def test_E109_actions_only_as_statements_or_let_values() -> None:
    body = rule(
        "let form = create_form(template: 'x')\n"            # fine
        "if set_status(guest_id: id, status: 'b') then stop end\n"  # 5
        "log(message: \"{create_form(template: 'y').url}\")\n"      # 6
        "let u = create_form(template: 'z').url")                   # 7
    assert found(body) == {(5, "E109"), (6, "E109"), (7, "E109")}


def test_E110_duplicates_at_the_later_one() -> None:
    text = ("trigger a.b { x: str, x: int }\n"      # 1
            "trigger a.b { y: str }\n"              # 2
            "action f(p: str, p: int)\n"            # 3
            "action f(q: str)\n"                    # 4
            "action send_email(to: str)\n"          # 5
            "trigger run.failed { rule: str }\n"     # 6
            "action len(x: str)\n"                  # 7
            "rule \"R\" when a.b then stop\n"        # 8
            "rule \"R\" when a.b then stop\n")       # 9
    assert found(text, schema="") == {(1, "E110"), (2, "E110"), (3, "E110"), (4, "E110"), (5, "E110"),
                                       (6, "E110"), (7, "E110"), (9, "E110")}


def test_E110_duplicate_rule_names_across_files() -> None:
    a = Source("a.rules", SCHEMA + 'rule "Same" when guest.added then stop\n')
    b = Source("b.rules", '\nrule "Same" when guest.added then stop\n')
    program = check_program([a, b])
    assert [(d.file, d.line, d.code) for d in program.diagnostics] == [("b.rules", 2, "E110")]


def test_E111_let_reusing_field_alias_event_or_earlier_let() -> None:
    body = rule(
        "let email = 'x'\n"      # 4 field
        "let guest = 'x'\n"      # 5 alias
        "let event = 'x'\n"      # 6 event
        "let n = 1\n"
        "if n > 0 then\nlet n = 2\nend\n"  # 9 earlier let in scope
        "let n = 3")             # 11
    assert found(body) == {(4, "E111"), (5, "E111"), (6, "E111"), (9, "E111"), (11, "E111")}


def test_E111_sibling_blocks_may_reuse_a_name() -> None:
    assert codes(rule("if true then\nlet x = 1\nelse\nlet x = 'a'\nend\nlet x = 2")) == []


def test_E112_time_zone_and_schedules() -> None:
    text = ('timezone "Europe/Pariss"\n'
            "when cron \"0 9 * *\" then stop\n"
            "when cron \"0 9 * * 1 5\" then stop\n"
            "when every mondey at 09:00 then stop\n"
            "when every day at 09:00 then log(message: \"{event.at}\")\n"
            "when every 1h then stop\n"
            "when cron \"*/5 * * * mon\" then stop\n"
            "when at 2026-12-01T09:00 then stop\n")
    assert found(text, schema="") == {(1, "E112"), (2, "E112"), (3, "E112"), (4, "E112")}
    assert "did you mean 'Europe/Paris'?" in messages(text, schema="")[0]


def test_valid_time_zone_is_the_rules_time_zone() -> None:
    program = check_program([Source("z.rules", 'timezone "Europe/Paris"\nwhen every 1d then stop\n'),
                             Source("u.rules", "when every 1d then stop\n")])
    assert [(r.name, r.timezone, r.trigger) for r in program.rules] == [
        ("z:2", "Europe/Paris", ast.SCHEDULE_TRIGGER), ("u:1", "UTC", ast.SCHEDULE_TRIGGER)]


def test_W201_after_stop_in_the_same_block_only() -> None:
    body = rule("if id = 'x' then\nstop\nlog(message: 'a')\nend\nlog(message: 'b')\nstop\nlog(message: 'c')\nlog(message: 'd')")
    program = check(body)
    offset = SCHEMA.count("\n")
    assert [(d.line - offset, d.code, d.severity) for d in program.diagnostics] == [
        (6, "W201", "warning"), (10, "W201", "warning")]
    assert program.ok


def test_every_problem_is_reported_and_a_syntax_error_does_not_hide_other_files() -> None:
    good_schema = Source("schema.rules", SCHEMA)
    broken = Source("broken.rules", "when guest.added then (\n")
    bad = Source("bad.rules", "when guest.added where frist = 1 then wait 'x'; nope()\n")
    program = check_program([good_schema, broken, bad])
    assert {(d.file, d.code) for d in program.diagnostics} >= {
        ("broken.rules", "E001"), ("bad.rules", "E102"), ("bad.rules", "E103"), ("bad.rules", "E104")}


# ----------------------------------------------------------------------------- scoping (SPEC 2.3)


def _refs_by_name(program) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for node in ast.walk(program.files[-1]):
        if isinstance(node, ast.Name) and node.id in program.refs:
            out.setdefault(node.name, set()).add(program.refs[node.id].kind)
    return out


def test_body_names_are_lets_then_fields_then_aliases() -> None:
    program = check(rule("let x = first_name\nlog(message: \"{x} {guest.email} {event.id} {id}\")"))
    assert program.ok
    assert _refs_by_name(program) == {"first_name": {"field"}, "x": {"let"}, "guest": {"event"},
                                      "event": {"event"}, "id": {"field"}}


def test_wait_for_clause_names_are_clause_fields_then_lets_then_aliases() -> None:
    program = check(rule(
        "let wanted = 'T-1'\n"
        "let reply = wait for guest.replied where thread = wanted and guest_id = guest.id within 1d\n"
        "if reply is null then stop end\nlog(message: reply.text)"))
    assert program.ok
    assert _refs_by_name(program) == {"thread": {"clause"}, "wanted": {"let"}, "guest_id": {"clause"},
                                      "guest": {"event"}, "reply": {"let"}}


def test_bare_start_field_in_a_clause_is_E102_with_the_alias_hint() -> None:
    schema = ("trigger message.sent { client_id: str, thread: str }\n"
              "trigger message.received { client_id: str, text: str }\n")
    body = rule("wait for message.received where client_id = client_id and thread = 'x'", trigger="message.sent")
    program = check(body, schema)
    same, diag = program.diagnostics  # `client_id = client_id` there is W202 (SPEC 3.1)
    assert same.code == "W202" and "client_id = message.client_id" in same.message
    assert diag.code == "E102" and "write it as message.thread" in diag.message


def test_exit_clause_sees_its_event_and_aliases_but_no_lets() -> None:
    schema = ("trigger cart.abandoned { customer_id: str, total: float }\n"
              "trigger order.placed { customer_id: str, order_id: str }\n")
    ok = ('rule "C"\nwhen cart.abandoned\nexit when order.placed where customer_id = cart.customer_id '
          "and event.total > 3\nthen\nlet x = 1\nend\n")
    program = check(ok, schema)
    assert program.ok
    bad = 'rule "C"\nwhen cart.abandoned\nexit when order.placed where x = 1 or total > 3\nthen\nlet x = 1\nend\n'
    assert [d.code for d in check(bad, schema).diagnostics] == ["E102", "E102"]


def test_nearest_scope_wins_over_the_alias() -> None:
    schema = "trigger form.submitted { form: str, score: int }\n"
    program = check(rule("stop", where="form = 'intake'", trigger="form.submitted"), schema)
    assert program.ok
    assert _refs_by_name(program) == {"form": {"field"}}


def test_let_is_visible_only_to_the_end_of_its_block() -> None:
    body = rule("if true then\nlet x = 1\nlog(message: \"{x}\")\nend\nlog(message: \"{x}\")")
    assert found(body) == {(8, "E102")}


def test_let_is_visible_only_after_its_definition() -> None:
    assert found(rule("log(message: \"{later}\")\nlet later = 1")) == {(4, "E102")}


def test_schedule_event_at_is_event_at() -> None:
    program = check_program([Source("s.rules", "when every 1h then wait until event.at + 1m\n")])
    assert program.diagnostics == []
    at_attr = next(n for n in ast.walk(program.files[0]) if isinstance(n, ast.Attr))
    assert program.types[at_attr.id] == T.DATETIME


def test_system_trigger_alias_is_its_first_segment() -> None:
    program = check_program([Source("f.rules", "when action.failed then log(message: \"{action.rule}: {error}\")\n")])
    assert program.diagnostics == []


# ----------------------------------------------------------------------------- null semantics and types


def _type_of(program, predicate) -> T.Type:
    node = next(n for n in ast.walk(program.files[-1]) if predicate(n))
    return program.types[node.id]


def test_optional_types_check_like_their_base_with_optional_results() -> None:
    program = check(rule("let doubled = age * 2\nlet c = lower(company)\nlet n = len(company)\n"
                         "let z = address.zip\nlet k = coalesce(company, 'none')",
                         where="company != 'Eventmaker' and age > 18"))
    assert program.ok
    lets = {n.name: program.types[n.value.id] for n in ast.walk(program.files[-1]) if isinstance(n, ast.Let)}
    assert lets == {"doubled": T.INT.as_optional(), "c": T.STR.as_optional(), "n": T.INT,
                    "z": T.STR.as_optional(), "k": T.STR}


def test_wait_for_value_is_optional_only_with_within() -> None:
    program = check(rule("let a = wait for guest.replied within 1d\nlet b = wait for guest.replied"))
    a, b = (n for n in ast.walk(program.files[-1]) if isinstance(n, ast.WaitFor))
    assert program.ok
    assert program.types[a.id] == program.schema.triggers["guest.replied"].type.as_optional()
    assert program.types[b.id] == program.schema.triggers["guest.replied"].type


def test_action_result_is_typed() -> None:
    program = check(rule("let form = create_form(template: 'x')\nlog(message: form.url)\nlog(message: form.nope)"))
    assert [d.code for d in program.diagnostics] == ["E102"]
    assert "unknown field 'nope'" in program.diagnostics[0].message


# ----------------------------------------------------------------------------- side tables


def test_every_expression_has_a_type_every_name_a_ref_every_call_a_resolution() -> None:
    program = check(rule(
        "send_email(email, \"Hi {upper(first_name)}\")\n"
        "let form = create_form(template: 'x')\n"
        "let r = wait for form.submitted where track_id = guest.id within 3d\n"
        "switch category\ncase 'VIP' then emit guest.replied(guest_id: id, text: form.url, thread: 't')\nend",
        where="tags contains 'a' and age >= 3"))
    assert program.ok, program.diagnostics
    expr_types = (ast.StrLit, ast.Template, ast.IntLit, ast.FloatLit, ast.BoolLit, ast.NullLit, ast.DurationLit,
                  ast.DateLit, ast.DateTimeLit, ast.ListLit, ast.Name, ast.Attr, ast.Call, ast.Unary, ast.Binary,
                  ast.Is)
    rule_node = program.rules[0].rule
    nodes = list(ast.walk(rule_node))
    for node in nodes:
        if isinstance(node, expr_types):
            assert node.id in program.types, node
        if isinstance(node, ast.Name):
            assert node.id in program.refs, node
        if isinstance(node, (ast.Call, ast.Emit)):
            assert node.id in program.calls, node
    send = next(n for n in nodes if isinstance(n, ast.Call) and n.func == "send_email")
    assert [name for name, _ in program.calls[send.id].args] == ["to", "subject"]
    emit = next(n for n in nodes if isinstance(n, ast.Emit))
    assert program.calls[emit.id].kind == "emit"
    assert [name for name, _ in program.calls[emit.id].args] == ["guest_id", "text", "thread"]


def test_unnamed_rules_and_source_text() -> None:
    text = SCHEMA + "\n# a comment\nwhen guest.added then stop\n"
    program = check_program([Source("dir/vip.rules", text)])
    info = program.rules[0]
    assert info.name == f"vip:{SCHEMA.count(chr(10)) + 3}"
    assert info.source_text.startswith("when guest.added then stop")
    assert info.trigger == "guest.added" and info.timezone == "UTC"


def test_triggers_declared_in_a_later_file_are_visible_earlier() -> None:
    rules = Source("a.rules", "when guest.added then log(message: email)\n")
    program = check_program([rules, Source("z.rules", SCHEMA)])
    assert program.diagnostics == []
    assert program.schema.triggers["guest.added"].origin == "program"


def test_host_schema_and_identical_redeclaration() -> None:
    host = Schema(triggers={"shop.sale": TriggerSchema("shop.sale", T.object_of({"amount": T.FLOAT}), origin="host")})
    ok = check_program([Source("a.rules", "trigger shop.sale { amount: float }\nwhen shop.sale where amount > 3 then stop\n")], host)
    assert ok.diagnostics == []
    clash = check_program([Source("a.rules", "trigger shop.sale { amount: str }\n")], host)
    assert [d.code for d in clash.diagnostics] == ["E110"]


# ----------------------------------------------------------------------------- check_expr


def _expr(text: str, trigger: str | None = "guest.added", locals=None, schema=None):
    expr, diags = parse_expr(text)
    assert expr is not None and not diags, diags
    return check_expr(expr, schema or check(rule("stop")).schema, trigger, locals)


def test_check_expr_resolves_bare_names_to_the_trigger_fields() -> None:
    result = _expr("category = 'VIP' and guest.age > 3 and event.email contains '@'")
    assert result.ok and result.type == T.BOOL
    assert {r.kind for r in result.refs.values()} == {"field", "event"}


def test_check_expr_locals_unknowns_and_actions() -> None:
    assert _expr("x + 1", locals={"x": T.INT}).type == T.INT
    assert [d.code for d in _expr("category = 'VPI'").diagnostics] == ["E107"]
    assert [d.code for d in _expr("frist_name").diagnostics] == ["E102"]
    assert [d.code for d in _expr("set_status(guest_id: 'a', status: 'b')").diagnostics] == ["E109"]
    assert [d.code for d in _expr("1 = 2", trigger="no.such").diagnostics] == ["E101"]
    assert _expr("lower('A')", trigger=None, schema=Schema()).type == T.STR


# ----------------------------------------------------------------------------- stdlib


def test_stdlib_schema_holds_system_triggers_actions_and_functions() -> None:
    schema = default_schema()
    assert schema.triggers["run.failed"].type.field_names == ["rule", "run_id", "error"]
    assert schema.triggers["action.failed"].type.field_names == ["rule", "run_id", "action", "error"]
    assert schema.triggers[ast.SCHEDULE_TRIGGER].type == T.object_of({"at": T.DATETIME})
    assert {a.origin for a in schema.actions.values()} == {"stdlib"}
    assert schema.actions["send_email"].param("body").default == ""
    assert default_schema() is not schema and default_schema().triggers is not schema.triggers


def test_function_implementations() -> None:
    now = dt.datetime(2026, 3, 29, 23, 30, tzinfo=dt.UTC)
    ctx = FunctionContext(now, "Europe/Paris")
    assert FUNCTIONS["now"].impl(ctx) == now and FUNCTIONS["now"].impl(ctx).utcoffset() == dt.timedelta(hours=2)
    assert FUNCTIONS["today"].impl(ctx) == dt.date(2026, 3, 30)
    assert FUNCTIONS["date"].impl(ctx, now) == dt.date(2026, 3, 30)
    assert FUNCTIONS["lower"].impl(ctx, "AbC") == "abc" and FUNCTIONS["upper"].impl(ctx, "a") == "A"
    assert FUNCTIONS["trim"].impl(ctx, "  x ") == "x"
    assert FUNCTIONS["len"].impl(ctx, None) == 0 and FUNCTIONS["len"].impl(ctx, [1, 2]) == 2
    assert FUNCTIONS["coalesce"].impl(ctx, None, None, 3, 4) == 3
    assert not FUNCTIONS["len"].null_in_null_out and FUNCTIONS["lower"].null_in_null_out


# ----------------------------------------------------------------------------- load_sources


def test_load_sources_files_folders_and_text(tmp_path: Path) -> None:
    (tmp_path / "b.rules").write_text("when guest.added then stop\n")
    (tmp_path / "a.rules").write_text(SCHEMA)
    (tmp_path / "notes.txt").write_text("ignored")
    assert [Path(s.name).name for s in load_sources(tmp_path)] == ["a.rules", "b.rules"]
    assert [Path(s.name).name for s in load_sources(str(tmp_path / "b.rules"))] == ["b.rules"]
    mixed = load_sources([tmp_path / "a.rules", "when guest.added then stop", "rule \"x\"\nwhen a.b then stop"])
    assert [s.name for s in mixed] == [str(tmp_path / "a.rules"), "input", "input-2"]
    assert check_program(load_sources([tmp_path / "a.rules", "when guest.added then stop"])).rules[0].name == "input:1"


def test_load_sources_missing_paths_raise_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such file"):
        load_sources(str(tmp_path / "missing.rules"))
    with pytest.raises(SourceError, match="no .rules files"):
        load_sources(tmp_path)



def test_a_file_that_is_not_utf8_is_E001_at_its_line_and_hides_nothing_else(tmp_path: Path) -> None:
    (tmp_path / "a.rules").write_text('trigger a.b { x: str }\nrule "A" when a.b then log(message: x) end\n')
    (tmp_path / "b.rules").write_bytes(b'rule "B" when a.b then\n  log(message: "caf' + b"\xe9\"\nend\n")
    (tmp_path / "c.rules").write_text('rule "C" when a.c then stop end\n')
    diagnostics = check_program(load_sources(tmp_path)).diagnostics
    found = [(Path(d.file).name, d.line, d.column, d.code) for d in diagnostics]
    assert found == [("b.rules", 2, 20, "E001"), ("c.rules", 1, 15, "E101")]
    assert "not UTF-8 text (byte 0xe9" in diagnostics[0].message
    (tmp_path / "d.rules").write_bytes(b"\xff\xfe")
    assert [d.code for d in check_program(load_sources(tmp_path / "d.rules")).diagnostics] == ["E001"]


def test_what_counts_as_source_text() -> None:
    assert is_source_text("when a.b then stop")
    assert is_source_text("trigger a.b { x: str }")
    assert is_source_text("x\ny")
    assert not is_source_text("rules/vip.rules")
    assert not is_source_text("whenever.rules")


# ----------------------------------------------------------------------------- never raises


VALID = SCHEMA + (
    'rule "VIP"\nwhen guest.added where category = \'VIP\' and age > 3\n'
    "exit when guest.replied where guest_id = guest.id\nthen\n"
    "  send_email(to: email, subject: \"Hi {first_name}\")\n  wait 1d\n"
    "  let r = wait for form.submitted where track_id = guest.id within 2d\n"
    "  if r is null then stop elif r.score > 3 then log(message: 'x') else emit guest.replied(guest_id: id, text: 't', thread: 'u') end\n"
    "  switch category\n  case 'VIP', 'Press' then wait until registered_at + 1h\n  else log(message: \"{len(tags)}\")\n  end\n"
    "end\n"
    "when every monday at 09:00 then log(message: \"{event.at}\")\n"
)
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _assert_never_raises(text: str) -> None:
    program = check_program([Source("h.rules", text)])
    assert "E000" not in {d.code for d in program.diagnostics}, [d.message for d in program.diagnostics]
    for d in program.diagnostics:
        d.render(text)


@FAST
@given(st.text(max_size=300))
def test_arbitrary_text_never_raises(text: str) -> None:
    _assert_never_raises(text)


@FAST
@given(st.lists(st.tuples(st.integers(0, len(VALID)), st.integers(0, 12),
                          st.sampled_from(["", " ", "\n", "(", ")", "'", '"', "{", "}", "x", "1", "and", "then",
                                           "end", "let", "=", ".", ",", ":", "wait", "stop", "null", "[", "]"])),
                min_size=1, max_size=4))
def test_mutated_valid_programs_never_raise(edits) -> None:
    text = VALID
    for position, delete, insert in edits:
        position = min(position, len(text))
        text = text[:position] + insert + text[position + delete:]
    _assert_never_raises(text)


def test_valid_hypothesis_seed_program_is_clean() -> None:
    assert check_program([Source("h.rules", VALID)]).diagnostics == []


def test_clause_event_alias_is_not_a_name() -> None:
    schema = SCHEMA + "trigger email.opened { guest_id: str, campaign: str }\n"
    [diag] = check(rule("wait for email.opened where email.campaign = 'x'"), schema).diagnostics
    assert diag.code == "E102" and "write the fields of email.opened bare" in diag.message


def test_alias_member_when_a_field_has_the_alias_name() -> None:
    schema = "trigger form.submitted { form: str, score: int }\n"
    program = check(rule("log(message: \"{form.score} {form}\")", trigger="form.submitted"), schema)
    assert program.ok
    assert _refs_by_name(program) == {"form": {"event", "field"}}


@FAST
@given(st.text(max_size=80))
def test_arbitrary_expression_text_never_raises(text: str) -> None:
    expr, _ = parse_expr(text)
    if expr is not None:
        result = check_expr(expr, default_schema(), "run.failed", {"x": T.INT})
        assert "E000" not in {d.code for d in result.diagnostics}


def test_literals_out_of_range_are_reported_not_crashes() -> None:
    assert found(rule("wait 99999999999999w", where="age = 99999999999999999999999")) == {(2, "E001"), (4, "E001")}
    assert codes("when every 99999999999999999w then stop\n", schema="") == ["E001"]


def test_function_argument_types() -> None:
    assert found(rule("let a = len(5)\nlet b = coalesce(company, 3)\nlet c = lower(null)\nlet d = date(today())")) == {
        (4, "E103"), (5, "E103"), (7, "E103")}
    assert found(rule("let e = now(1)\nlet f = upper(s: first_name, t: 'x')")) == {(4, "E105"), (5, "E105")}


def test_check_files_reports_misplaced_time_zones_the_parser_kept() -> None:
    from whenthen.compiler.checker import check_files
    from whenthen.diagnostics import Span

    def at(line: int) -> Span:
        return Span("h.rules", line * 10, line * 10 + 5, line, 1, line, 6)

    file = ast.File("h.rules", (
        ast.TriggerDecl("a.b", (ast.FieldDecl("x", ast.NamedType("str")),), span=at(1)),
        ast.TimezoneDecl("Europe/Paris", span=at(2)),
        ast.Rule(None, ast.TriggerRef("a.b", span=at(3)), ast.Binary("=", ast.Name("x", span=at(3)), ast.StrLit("y")),
                 (), (ast.Stop(span=at(4)),), span=at(3), when_span=at(3)),
    ))
    program = check_files([file], [Source("h.rules", "")])
    assert [(d.line, d.code) for d in program.diagnostics] == [(2, "E001")]
    assert [(r.name, r.trigger) for r in program.rules] == [("h:3", "a.b")]


def test_the_spec_examples_check_clean() -> None:
    import re

    spec = REPO.parent / "shared" / "SPEC.md"
    if not spec.exists():
        pytest.skip("no SPEC.md beside the repository")
    schema, vip = re.findall(r"```\n(.*?)```", spec.read_text(encoding="utf-8"), re.S)[:2]
    program = check_program([Source("schema.rules", schema), Source("vip.rules", vip)])
    assert program.diagnostics == []
    assert [r.name for r in program.rules] == ["VIP welcome", "vip:16"]


def test_W202_comparison_with_itself_anywhere_with_the_alias_hint_in_wait_for() -> None:
    # SPEC 3.1 W202: `thread = thread` in a `wait for` is always true; the hint names `message.thread`
    schema = ("trigger message.sent { thread: str, n: int }\n"
              "trigger message.got { thread: str }\n")
    body = rule("let r = wait for message.got where thread = thread within 1d\n"
                "if n + 1 >= n + 1 then stop end\nif n = n + 1 then stop end", trigger="message.sent")
    program = check(body, schema)
    assert [d.code for d in program.diagnostics] == ["W202", "W202"]
    first, second = program.diagnostics
    assert first.severity == "warning" and "always true" in first.message
    assert "`thread = message.thread`" in first.message
    assert "message." not in second.message and program.ok
    where = check(rule("stop", where="id != id"))
    assert [(d.code, "always false" in d.message) for d in where.diagnostics] == [("W202", True)]


def test_W203_wall_clock_without_timezone_while_another_file_declares_one() -> None:
    # SPEC 3.1 W203: at the first use, for each file without `timezone`; not `every DURATION`
    schema = Source("schema.rules", 'timezone "Europe/Paris"\n' + SCHEMA)
    uses = {
        "every day at 09:00": "when every day at 09:00 then stop\n",
        "every monday": "when every monday at 09:00 then stop\n",
        "cron": 'when cron "0 9 * * 1" then stop\n',
        "at": "when at 2026-12-01T09:00 then stop\n",
        "literal": "when guest.added then\nwait 1h\nwait until 2026-12-01T09:00\nend\n",
        "today": "when guest.added where today() = date(registered_at) then stop\n",
    }
    for what, text in uses.items():
        program = check_program([schema, Source("r.rules", text)])
        assert [(d.file, d.code) for d in program.diagnostics] == [("r.rules", "W203")], what
        assert 'timezone "Europe/Paris"' in program.diagnostics[0].message and program.ok
    literal = check_program([schema, Source("r.rules", uses["literal"])]).diagnostics[0]
    assert literal.line == 3
    quiet = ["when every 1h then stop\n", "when at 2026-12-01T09:00Z then stop\n",
             "when guest.added then wait until 2026-12-01T09:00:00+01:00\n"]
    for text in quiet:
        assert check_program([schema, Source("r.rules", text)]).diagnostics == [], text
    # no file declares one, or this file declares its own: nothing
    assert check_program([Source("s.rules", SCHEMA), Source("r.rules", uses["cron"])]).diagnostics == []
    own = Source("r.rules", 'timezone "UTC"\n' + uses["cron"])
    assert check_program([schema, own]).diagnostics == []
    two = check_program([schema, Source("r.rules", uses["cron"] + uses["at"])])
    assert len(two.diagnostics) == 1
