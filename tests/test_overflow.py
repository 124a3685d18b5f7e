"""SPEC 2.7: arithmetic that leaves the finite numbers, 64-bit ints or the datetime range fails the run."""

from __future__ import annotations

import datetime as dt

import pytest

from whenthen.api import compile as compile_rules
from whenthen.runtime.clock import SimulatedClock
from whenthen.runtime.engine import Engine
from whenthen.runtime.evaluate import evaluate_expression

SCHEMA = "trigger n.in { f: float, i: int, t: datetime, d: duration }\naction record(x: float)\n"
EVENT = {"f": 1e200, "i": 2**62, "t": "9999-12-30T00:00:00Z", "d": 86400}


def engine_with(tmp_path, rules: str) -> Engine:
    engine = Engine(tmp_path / "wt.db", SimulatedClock(dt.datetime(2026, 1, 1, tzinfo=dt.UTC)))
    seen: list[float] = []

    @engine.action
    def record(x: float) -> None:
        seen.append(x)

    engine.seen = seen  # type: ignore[attr-defined]
    engine.publish(compile_rules(SCHEMA + rules, engine.schema), author="t", enable=True)
    return engine


@pytest.mark.parametrize(("expression", "message"), [
    ("f * f", "arithmetic overflow: 1e+200 * 1e+200 is not a finite number"),
    ("f * f - f * f", "is not a finite number"),
    ("i * 4", "is outside the 64-bit integer range"),
    ("i + i + i", "is outside the 64-bit integer range"),
    ("i * i", "is outside the 64-bit integer range"),
])
def test_an_overflowing_number_fails_the_run_and_never_reaches_an_action(tmp_path, expression, message):
    engine = engine_with(tmp_path, f'rule "R" when n.in then record(x: {expression}) end\n')
    engine.emit("n.in", EVENT)
    [run] = engine.runs(rule="R")
    assert run["status"] == "failed" and message in run["error"], run["error"]
    assert engine.seen == []  # type: ignore[attr-defined]


def test_a_datetime_out_of_range_says_so(tmp_path):
    engine = engine_with(tmp_path, 'rule "R" when n.in then log(message: "{t + 2 * d}") end\n')
    engine.emit("n.in", EVENT)
    [run] = engine.runs(rule="R")
    assert run["status"] == "failed" and "the result is out of the datetime range" in run["error"], run["error"]


def test_in_a_where_an_overflow_is_false_and_starts_nothing(tmp_path):
    engine = engine_with(tmp_path, 'rule "R" when n.in where f * f > 0 then log(message: "x") end\n'
                                   'rule "S" when n.in where f * 2 > 0 then log(message: "x") end\n')
    engine.emit("n.in", EVENT)
    assert engine.runs(rule="R") == [] and len(engine.runs(rule="S")) == 1


def test_evaluate_reports_the_overflow():
    schema = compile_rules(SCHEMA).schema
    with pytest.raises(Exception, match="is not a finite number"):
        evaluate_expression("f * f", "n.in", EVENT, schema)
    assert evaluate_expression("f * 2", "n.in", EVENT, schema) == 2e200
