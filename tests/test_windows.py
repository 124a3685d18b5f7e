"""Sending windows (SPEC 2.12): `during HH:MM-HH:MM [on DAYS]`, on every stage."""

from __future__ import annotations

import datetime as dt

import whenthen
from whenthen.api import compile as compile_rules
from whenthen.calendar import in_window, next_opening
from whenthen.runtime.clock import SimulatedClock
from whenthen.runtime.engine import Engine
from whenthen.tools.fmt import format_source

SCHEMA = 'timezone "Europe/Paris"\ntrigger cart.abandoned { email: str, on: str, during: int }\n'
CART = SCHEMA + """
rule "Cart"
when cart.abandoned where on = 'x' or during > 0
during 09:00-20:00 on monday-friday, saturday
then
  log(message: "hi {email} {on} {during}")
end
"""
W = {"start": 9 * 60, "end": 20 * 60, "days": [0, 1, 2, 3, 4, 5]}
NIGHT = {"start": 22 * 60, "end": 6 * 60, "days": [4]}  # friday 22:00 to saturday 06:00


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


def test_syntax_keeps_on_and_during_as_field_names_and_round_trips() -> None:
    assert whenthen.check(CART) == []
    formatted = format_source(CART)
    assert "during 09:00-20:00 on monday-friday, saturday" in formatted and format_source(formatted) == formatted


def test_equal_start_and_end_is_e112_at_the_clause() -> None:
    diags = whenthen.check(SCHEMA + "when cart.abandoned\nduring 09:00-09:00\nthen stop\n")
    assert [(d.code, d.span.line, d.span.column) for d in diags] == [("E112", 4, 1)]


def test_start_included_end_excluded_past_midnight_named_by_the_opening_day() -> None:
    assert in_window(W, "UTC", utc(2026, 12, 7, 9, 0)) and not in_window(W, "UTC", utc(2026, 12, 7, 20, 0))
    assert in_window(NIGHT, "UTC", utc(2026, 12, 5, 3, 0))  # saturday 03:00, opened friday
    assert not in_window(NIGHT, "UTC", utc(2026, 12, 4, 3, 0))  # friday 03:00: thursday's is not in DAYS
    assert next_opening(W, "Europe/Paris", utc(2026, 12, 5, 21, 30)) == utc(2026, 12, 7, 8, 0)


def test_dst_gap_opens_at_the_first_instant_after_it() -> None:
    window = {"start": 2 * 60 + 30, "end": 5 * 60, "days": list(range(7))}
    assert next_opening(window, "Europe/Paris", utc(2026, 3, 28, 23, 0)) == utc(2026, 3, 29, 1, 0)


def test_a_delayed_action_waits_durably_and_resumes_in_a_new_engine(db: str) -> None:
    clock = SimulatedClock(utc(2026, 12, 5, 21, 30))  # saturday 22:30 in Paris
    engine = Engine(db, clock)
    engine.publish(compile_rules(CART, engine.schema), author="t", enable=True)
    engine.emit("cart.abandoned", {"email": "a@b", "on": "x", "during": 1})
    run_id = engine.runs()[0]["id"]
    assert engine.run(run_id)["status"] == "waiting"
    engine.close()
    clock.set(utc(2026, 12, 7, 8, 0))
    again = Engine(db, clock)
    again.run_due()
    run = again.run(run_id)
    action = next(s for s in run["steps"] if s["kind"] == "action")
    assert run["status"] == "completed"
    assert (action["at"], action["due_at"]) == ("2026-12-07T08:00:00Z", "2026-12-05T21:30:00Z")
    again.close()
