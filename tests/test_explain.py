"""Explain (SPEC 2.14): what a rule did with a stored event, on both backends."""

from __future__ import annotations

import datetime as dt

from whenthen.api import compile as compile_rules
from whenthen.runtime.clock import SimulatedClock
from whenthen.runtime.engine import Engine
from whenthen.runtime.evaluate import format_explanation, prepare_expression

T0 = dt.datetime(2026, 11, 1, 10, 0, tzinfo=dt.UTC)
SRC = """trigger guest.added { first_name: str, category: str, age: int? }
rule "VIP" when guest.added where category = 'VIP' and (age > 30 or first_name = 'John')
then log(message: "hi")
"""
CONDITION = "category = 'VIP' and (age > 30 or first_name = 'John')"


def test_filtered_started_and_the_version_active_then(db: str) -> None:
    clock = SimulatedClock(T0)
    engine = Engine(db, clock)
    engine.publish(compile_rules(SRC, engine.schema), enable=True)
    clock.advance(dt.timedelta(minutes=1))
    jane = {"first_name": "Jane", "category": "Regular", "age": 40}
    a = engine.emit("guest.added", jane)
    b = engine.emit("guest.added", {"first_name": "John", "category": "VIP", "age": 20})
    clock.advance(dt.timedelta(minutes=1))
    engine.publish(compile_rules(SRC.replace("'VIP' and", "'Regular' and"), engine.schema))
    found = engine.explain("VIP", a)
    assert (found["outcome"], found["version"], found["current_version"]) == ("filtered", 1, 2)
    prepared = prepare_expression(CONDITION, "guest.added", compile_rules(SRC, engine.schema).schema)
    assert found["breakdown_text"] == format_explanation(prepared.explain(jane), "UTC", indent="  ")
    started = engine.explain("VIP", b)
    assert started["outcome"] == "started" and started["run"] == engine.runs()[0]["id"]
    engine.close()
