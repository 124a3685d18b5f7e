"""`whenthen.evaluate` and the condition breakdown: every value type, null semantics, errors."""

from __future__ import annotations

import datetime as dt

import pytest

import whenthen.api as api
from whenthen.diagnostics import CompileError, EventError, WhenthenError
from whenthen.runtime.evaluate import (
    evaluate_expression,
    explain_condition,
    format_explanation,
    show_value,
)

UTC = dt.UTC

SCHEMA = """
trigger guest.added {
  id: str
  first_name: str
  category: 'VIP' | 'Visitor' | 'Press'
  company: str?
  age: int?
  score: float
  tags: list[str]
  registered_at: datetime
  birthday: date?
  grace: duration
  extra: json?
  address: { city: str, zip: str? }
}
"""

JANE = {
    "id": "g1",
    "first_name": "Jane",
    "category": "VIP",
    "score": 80,
    "tags": ["press", "vip"],
    "registered_at": "2026-11-23T08:00:00Z",
    "birthday": "1990-05-17",
    "grace": 3600,
    "extra": {"a": [1, 2]},
    "address": {"city": "Paris"},
}


@pytest.fixture(scope="module")
def schema():
    return api.compile(SCHEMA).schema


def ev(schema, expression: str, event: dict | None = None, trigger: str | None = "guest.added"):
    return evaluate_expression(expression, trigger, JANE if event is None else event, schema)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("first_name", "Jane"),
        ("category", "VIP"),
        ("age", None),
        ("company", None),
        ("score", 80.0),  # a float field holds a float, whatever the payload wrote (SPEC 2.6)
        ("score / 2", 40.0),
        ("len(tags)", 2),
        ("tags", ["press", "vip"]),
        ("address.city", "Paris"),
        ("address.zip", None),
        ("guest.first_name", "Jane"),
        ("event.id", "g1"),
        ("registered_at", dt.datetime(2026, 11, 23, 8, tzinfo=UTC)),
        ("registered_at + 1h30m", dt.datetime(2026, 11, 23, 9, 30, tzinfo=UTC)),
        ("birthday", dt.date(1990, 5, 17)),
        ("grace", dt.timedelta(hours=1)),
        ("grace * 2", dt.timedelta(hours=2)),
        ("extra", {"a": [1, 2]}),
        ("upper(first_name)", "JANE"),
        ("coalesce(company, 'none')", "none"),
        ('"Hi {first_name}, {len(tags)} tags"', "Hi Jane, 2 tags"),
        ("1h30m", dt.timedelta(minutes=90)),
        ("2026-12-01", dt.date(2026, 12, 1)),
        ("2026-12-01T09:00:00Z", dt.datetime(2026, 12, 1, 9, tzinfo=UTC)),
        ("category = 'VIP'", True),
        ("tags contains 'vip'", True),
        ("first_name starts with 'Ja'", True),
        ("first_name matches '^J.n'", True),
        ("category in ['Press', 'Visitor']", False),
        ("'press' in tags", True),
        ("3 % 2 = 1 and -score < 0", True),
    ],
)
def test_values_of_every_type(schema, expression: str, expected: object) -> None:
    value = ev(schema, expression)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("company != 'Eventmaker'", True),  # = and != treat null as a value
        ("company = null", True),
        ("company = 'x'", False),
        ("age > 18", False),  # ordering with null is false ...
        ("not (age <= 18)", True),  # ... so these two differ
        ("company contains 'x'", False),
        ("company starts with 'x'", False),
        ("company matches 'x'", False),
        ("company in ['x']", False),
        ("age + 1", None),  # arithmetic on null is null
        ("address.zip is null", True),
        ("company is empty", True),
        ("company is not empty", False),
        ("len(company)", 0),
        ("lower(company)", None),
    ],
)
def test_null_semantics(schema, expression: str, expected: object) -> None:
    assert ev(schema, expression) == expected


def test_without_trigger_or_event(schema) -> None:
    assert evaluate_expression("1 + 2 * 3", None, None, schema) == 7
    assert evaluate_expression("len(['a', 'b'])") == 2
    assert evaluate_expression("today() - 1d < today()", now=dt.datetime(2026, 1, 1, tzinfo=UTC)) is True


def test_public_api_accepts_a_program_or_rules_source(schema) -> None:
    program = api.compile(SCHEMA)
    assert api.evaluate("category = 'VIP'", trigger="guest.added", event=JANE, schema=program) is True
    assert api.evaluate("first_name", trigger="guest.added", event=JANE, schema=SCHEMA) == "Jane"


def test_errors_are_diagnostics_not_tracebacks(schema) -> None:
    with pytest.raises(CompileError) as err:
        ev(schema, "frist_name = 'John'")
    [diag] = err.value.diagnostics
    assert diag.code == "E102" and "first_name" in diag.message
    with pytest.raises(CompileError) as err:
        ev(schema, "category = 'Vip'")
    assert err.value.diagnostics[0].code == "E107"
    with pytest.raises(CompileError) as err:
        ev(schema, "age = ")
    assert err.value.diagnostics[0].code == "E001"
    with pytest.raises(CompileError) as err:
        ev(schema, "x = 1", trigger="guest.addde")
    assert err.value.diagnostics[0].code == "E101"
    assert "guest.added" in err.value.diagnostics[0].message


def test_bad_events_raise_event_error(schema) -> None:
    with pytest.raises(EventError, match="first_name"):
        ev(schema, "id", {**JANE, "first_name": 3})
    with pytest.raises(EventError, match="missing"):
        ev(schema, "id", {"id": "x"})
    with pytest.raises(EventError, match="no event"):
        evaluate_expression("first_name", "guest.added", None, schema)
    # an expression that does not read the event needs none
    assert evaluate_expression("1 + 1", "guest.added", None, schema) == 2


def test_explain_condition_breaks_down_and_or_not(schema) -> None:
    parts = explain_condition("category = 'VIP' and (first_name = 'John' or not (age > 18))",
                              "guest.added", JANE, schema)
    rows = [(p.depth, p.text, p.value, p.operands) for p in parts]
    assert rows == [
        (0, "category = 'VIP' and (first_name = 'John' or not (age > 18))", True, ()),
        (1, "category = 'VIP'", True, (("category", "VIP"),)),
        (1, "first_name = 'John' or not (age > 18)", True, ()),
        (2, "first_name = 'John'", False, (("first_name", "Jane"),)),
        (2, "not (age > 18)", True, ()),
        (3, "age > 18", False, (("age", None),)),
    ]
    text = format_explanation(parts)
    assert "first_name = 'John'" in text
    line = next(x for x in text.splitlines() if "first_name = 'John'" in x and " or " not in x)
    assert line.split() [-4:] == ["false", "(first_name", "is", "'Jane')"]


def test_explain_flattens_chains_and_shows_call_operands(schema) -> None:
    parts = explain_condition("len(tags) >= 2 and score > 50 and company is null", "guest.added", JANE, schema)
    assert [p.depth for p in parts] == [0, 1, 1, 1]
    assert parts[1].operands == (("len(tags)", 2),)
    assert parts[3].operands == (("company", None),)


def test_show_value_uses_literal_syntax() -> None:
    assert show_value("it's") == "'it\\'s'"
    assert show_value(None) == "null"
    assert show_value([True, 1.5]) == "[true, 1.5]"
    assert show_value(dt.timedelta(hours=1, minutes=30)) == "1h30m"
    assert show_value(dt.datetime(2026, 12, 1, 9, tzinfo=UTC)) == "2026-12-01T09:00:00Z"
    assert show_value({"a": dt.date(2026, 1, 2)}) == "{ a: 2026-01-02 }"


def test_runtime_errors_are_whenthen_errors(schema) -> None:
    with pytest.raises(WhenthenError, match="division by zero"):
        ev(schema, "score / 0")


def test_explain_treats_plain_double_quoted_strings_as_literals(schema) -> None:
    [part] = explain_condition('category = "VIP"', "guest.added", JANE, schema)
    assert part.operands == (("category", "VIP"),)


def test_a_bare_schema_still_has_the_stdlib_in_scope() -> None:
    from whenthen.compiler.decls import Schema, TriggerSchema
    from whenthen.compiler.types import STR, object_of

    bare = Schema(triggers={"shop.order": TriggerSchema("shop.order", object_of({"ref": STR}))})
    assert evaluate_expression("len(upper(ref))", "shop.order", {"ref": "abc"}, bare) == 3
    failed = {"rule": "r", "run_id": "7", "error": "boom"}
    assert evaluate_expression("run_id = '7'", "run.failed", failed, bare) is True
