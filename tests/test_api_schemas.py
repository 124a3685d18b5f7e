"""The `schema=` forms of check, compile and evaluate: pydantic models as trigger schemas (SPEC 4)."""

from __future__ import annotations

import datetime as dt

import pytest

import whenthen
from _models import Order

ORDER = {"id": "o1", "total": 120.5, "status": "new", "tags": ["gift"], "ship_to": {"city": "Lyon"},
         "placed_at": "2026-11-22T09:00:00Z"}


def test_pydantic_models_as_schemas_in_compile_and_evaluate():
    assert whenthen.evaluate("total > 100 and ship_to.zip is null", trigger="order.placed", event=ORDER,
                             schema=Order) is True
    assert whenthen.evaluate("placed_at + 1h", trigger="order.placed", event=ORDER, schema={"order.placed": Order}) \
        == dt.datetime(2026, 11, 22, 10, 0, tzinfo=dt.UTC)
    program = whenthen.compile("when order.placed where status = 'new' then log(message: id)",
                               schema={"order.placed": Order})
    assert program.rule_names == ["input:1"]
    with pytest.raises(whenthen.CompileError, match="unknown field 'totl'"):
        whenthen.compile("when order.placed where totl > 1 then stop", schema={"order.placed": Order})
    with pytest.raises(TypeError, match="needs trigger="):
        whenthen.evaluate("total", event=ORDER, schema=Order)
    with pytest.raises(whenthen.WhenthenError, match="two or more dotted segments"):
        whenthen.compile("", schema={"order": Order})
    with pytest.raises(TypeError, match="schema must be"):
        whenthen.check("", schema=42)


def test_the_public_api_names():
    for name in ("check", "compile", "evaluate", "Engine", "Program", "RetryPolicy", "StdlibConfig",
                 "SimulatedClock", "FixedClock", "CompileError", "EventError", "PermanentActionError"):
        assert getattr(whenthen, name) is not None, name
    assert whenthen.check("when x.y then stop")[0].code == "E101"
