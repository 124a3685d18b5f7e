"""Event payload validation and coercion: every rejection names the trigger, the field and why."""

from __future__ import annotations

import datetime as dt
from typing import Literal, TypedDict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from whenthen.compiler.decls import TriggerSchema
from whenthen.compiler.types import (
    BOOL,
    DATE,
    DATETIME,
    DURATION,
    FLOAT,
    INT,
    JSON,
    STR,
    enum_of,
    list_of,
    object_of,
)
from whenthen.diagnostics import EventError
from whenthen.runtime.events import (
    MAX_PAYLOAD_BYTES,
    coerce_value,
    lookup_trigger,
    parse_event_line,
    parse_payload,
    python_type,
    type_from_data,
    type_to_data,
    validate_event,
)

GUEST = TriggerSchema("guest.added", object_of({
    "id": STR,
    "category": enum_of(("VIP", "Visitor")),
    "company": STR.as_optional(),
    "age": INT.as_optional(),
    "score": FLOAT,
    "tags": list_of(STR),
    "registered_at": DATETIME,
    "birthday": DATE.as_optional(),
    "grace": DURATION.as_optional(),
    "vip": BOOL.as_optional(),
    "extra": JSON.as_optional(),
    "address": object_of({"city": STR, "zip": STR.as_optional()}).as_optional(),
}))

GOOD = {"id": "g1", "category": "VIP", "score": 80, "tags": ["a"], "registered_at": "2026-11-22T10:00:00+01:00"}


def test_valid_payload_is_coerced_to_runtime_values():
    event = validate_event(GUEST, {**GOOD, "birthday": "1990-05-01", "grace": 90, "address": {"city": "Paris"},
                                   "extra": {"any": [1, None]}})
    assert event["registered_at"] == dt.datetime(2026, 11, 22, 9, 0, tzinfo=dt.UTC)
    assert event["birthday"] == dt.date(1990, 5, 1)
    assert event["grace"] == dt.timedelta(seconds=90)
    assert event["score"] == 80  # an int is a valid float
    assert event["company"] is None and event["age"] is None  # absent optional fields are null
    assert event["address"] == {"city": "Paris", "zip": None}


@pytest.mark.parametrize("change, field, reason", [
    ({"id": None}, "id", "null is not a str"),
    ({"category": "Boss"}, "category", "'Boss' is not one of 'VIP', 'Visitor'"),
    ({"score": "high"}, "score", 'expected float, got string "high"'),
    ({"score": True}, "score", "expected float, got boolean true"),
    ({"age": 3.5}, "age", "expected int, got number 3.5"),
    ({"tags": ["a", 2]}, "tags[1]", "expected str, got number 2"),
    ({"registered_at": "yesterday"}, "registered_at", "not an ISO 8601 datetime"),
    ({"registered_at": "2026-11-22"}, "registered_at", "is a date, not a datetime"),
    ({"grace": "soon"}, "grace", "is not a duration"),
    ({"address": {"zip": "1"}}, "address.city", "missing required field of type str"),
    ({"compnay": "x"}, "compnay", "unknown field; did you mean 'company'?"),
])
def test_each_bad_field_is_named_with_its_reason(change, field, reason):
    with pytest.raises(EventError) as info:
        validate_event(GUEST, {**GOOD, **change})
    assert info.value.trigger == "guest.added"
    assert info.value.field == field
    assert str(info.value).startswith(f"guest.added: field '{field}': ")
    assert reason in str(info.value)


def test_missing_field_and_non_object_payload():
    with pytest.raises(EventError, match="field 'registered_at': missing required field of type datetime"):
        validate_event(GUEST, {k: v for k, v in GOOD.items() if k != "registered_at"})
    with pytest.raises(EventError, match="must be a JSON object, not a list"):
        validate_event(GUEST, [1])


def test_payload_text_limits_and_malformed_json():
    with pytest.raises(EventError, match="payload too large"):
        parse_payload("x" * (MAX_PAYLOAD_BYTES + 1), "guest.added")
    with pytest.raises(EventError, match="guest.added: invalid JSON"):
        parse_payload("{bad", "guest.added")
    with pytest.raises(EventError, match="nested more than"):
        validate_event(TriggerSchema("a.b", object_of({"j": JSON})), {"j": parse_payload("[" * 40 + "]" * 40)})


def test_unknown_trigger_suggests_a_close_one():
    with pytest.raises(EventError, match="unknown trigger 'guest.addd'; did you mean 'guest.added'"):
        lookup_trigger({"guest.added": GUEST}, "guest.addd")


def test_event_lines():
    trigger, at, data = parse_event_line('{"trigger": "a.b", "at": "2026-11-22T10:00:00Z", "data": {"x": 1}}')
    assert (trigger, at, data) == ("a.b", dt.datetime(2026, 11, 22, 10, tzinfo=dt.UTC), {"x": 1})
    assert parse_event_line('{"trigger": "a.b"}')[1:] == (None, {})
    for bad, message in [('{"data": {}}', "no \"trigger\""), ("[]", "must be a JSON object"),
                         ('{"trigger": "a.b", "when": 1}', "unknown key 'when'"),
                         ('{"trigger": "a.b", "at": "noon"}', "'at'")]:
        with pytest.raises(EventError, match=message):
            parse_event_line(bad)


def test_action_results_are_coerced_against_the_declared_type():
    assert coerce_value(object_of({"id": STR}), {"id": "f1"}, "result of create_form") == {"id": "f1"}
    with pytest.raises(EventError, match="result of create_form at 'id': expected str"):
        coerce_value(object_of({"id": STR}), {"id": 3}, "result of create_form")


def test_python_annotations_become_types():
    class Form(BaseModel):
        id: str
        url: str | None

    class Point(TypedDict):
        x: int

    assert python_type(str) == STR
    assert python_type(int | None) == INT.as_optional()
    assert python_type(list[dt.datetime]) == list_of(DATETIME)
    assert python_type(Literal["a", "b"]) == enum_of(("a", "b"))
    assert python_type(dict) == JSON
    assert python_type(Form) == object_of({"id": STR, "url": STR.as_optional()})
    assert python_type(Point) == object_of({"x": INT})


types = st.recursive(
    st.sampled_from([STR, INT, FLOAT, BOOL, DATETIME, DATE, DURATION, JSON]).flatmap(
        lambda t: st.sampled_from([t, t.as_optional()])),
    lambda inner: st.one_of(
        inner.map(list_of),
        st.dictionaries(st.from_regex(r"[a-z]{1,5}", fullmatch=True), inner, min_size=1, max_size=3).map(object_of),
        st.lists(st.from_regex(r"[a-z]{1,4}", fullmatch=True), min_size=1, max_size=3, unique=True).map(
            lambda v: enum_of(tuple(v)))),
    max_leaves=6)


@settings(max_examples=60, deadline=None)
@given(types)
def test_types_round_trip_through_stored_data(typ):
    assert type_from_data(type_to_data(typ)) == typ


@settings(max_examples=80, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
                    max_leaves=8))
def test_random_payloads_never_raise_anything_but_event_error(data):
    try:
        validate_event(GUEST, data if isinstance(data, dict) else {"id": data})
    except EventError:
        pass


@pytest.mark.parametrize("change, field, reason", [
    ({"age": 2**63}, "age", "integer 9223372036854775808 is out of the 64-bit range"),
    ({"age": -(2**63) - 1}, "age", "is out of the 64-bit range"),
    ({"age": 1e300}, "age", "is out of the 64-bit range"),
    ({"score": 10**400}, "score", "is too large for a float"),
    ({"score": float("nan")}, "score", "not a finite number"),
    ({"id": "a\ud800b"}, "id", "not valid Unicode text (a lone surrogate at character 1)"),
    ({"category": "\udfff"}, "category", "lone surrogate"),
    ({"tags": ["ok", "\ud83d"]}, "tags[1]", "lone surrogate"),
    ({"extra": {"k": [1, float("-inf")]}}, "extra.k[1]", "-Infinity is not a finite number"),
    ({"extra": {"k": float("nan")}}, "extra.k", "NaN is not a finite number"),
    ({"extra": [2**64]}, "extra[0]", "out of the 64-bit range"),
    ({"extra": {"\ud800": 1}}, "extra", "lone surrogate"),
    ({"extra": "\udc00"}, "extra", "lone surrogate"),
    ({"grace": 10**30}, "grace", "out of range"),
    ({"grace": "99999999999w"}, "grace", "out of range"),
    ({"registered_at": "9999-12-31T23:59:00-01:00"}, "registered_at", "out of the datetime range"),
    ({"\ud800x": 1}, "\\ud800x", "unknown field"),
])
def test_values_at_the_boundary_are_refused_with_the_field_named(change, field, reason):
    with pytest.raises(EventError) as info:
        validate_event(GUEST, {**GOOD, **change})
    assert info.value.field == field and reason in str(info.value), str(info.value)
    str(info.value).encode("utf-8")  # the message itself is printable text


def test_int_edges_fit_floats_are_floats_and_json_takes_null():
    event = validate_event(GUEST, {**GOOD, "age": 2**63 - 1, "score": 80})
    assert event["age"] == 2**63 - 1
    assert event["score"] == 80.0 and isinstance(event["score"], float)  # SPEC 2.6: renders 80.0
    assert validate_event(GUEST, {**GOOD, "age": -(2**63)})["age"] == -(2**63)
    required_json = TriggerSchema("t.j", object_of({"j": JSON}))
    assert validate_event(required_json, {"j": None}) == {"j": None}  # SPEC 2.7: json includes null
    with pytest.raises(EventError, match="field 'j': missing required field"):
        validate_event(required_json, {})
