"""Formatting cost: a template with `format_datetime` against one with a plain `{starts_at}`, and
against Babel called directly.

Run: python bench/formatting.py [--renders N] [--distinct K] [--repeat R]

Each case renders N messages; the cases take turns, R rounds, and each keeps its best round. The
rule cases run a compiled rule body `log(message: "…")` in the VM with a host whose actions do
nothing, in a file with `timezone "Europe/Paris"` and `locale "fr_FR"`:
- plain: `"Rendez-vous le {starts_at}"` (ISO 8601, whenthen's own formatter);
- format_datetime, K distinct datetimes:
  `"Rendez-vous le {format_datetime(starts_at, 'EEEE d MMMM à HH:mm')}"` over events whose
  `starts_at` takes K values (an event's few sessions announced to many guests);
- format_datetime, all distinct: the same with N different datetimes and the result cache emptied
  before each round (every render formats anew, from field texts memoised in earlier rounds, as
  in a worker that has been running).
The baseline a user would write without whenthen (no rule, no VM): `"Rendez-vous le " +
babel.dates.format_datetime(value, pattern, tzinfo=ZoneInfo("Europe/Paris"), locale="fr_FR")` in a
Python loop over the same N distinct values; and whenthen's `format_datetime` called alone as the
VM calls it, on the same values with the result cache emptied (the function's own cost against
Babel's). Target (issue 17): the format_datetime template at ≥ 50% of the plain one's rate.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from typing import Any
from zoneinfo import ZoneInfo

from babel import dates

from whenthen.compiler.checker import check_program
from whenthen.compiler.codegen import compile_rules
from whenthen.runtime.vm import Done, call_function, run, start_frame
from whenthen.source import Source
from whenthen.stdlib import formatting
from whenthen.stdlib.functions import FunctionContext

HEAD = 'timezone "Europe/Paris"\nlocale "fr_FR"\ntrigger booking.made { id: str, starts_at: datetime }\n'
PATTERN = "EEEE d MMMM à HH:mm"
START = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC)


class NullHost:
    """The cheapest host: actions return null, nothing is recorded."""

    def now(self) -> dt.datetime:
        return START

    def call_action(self, name: str, args: dict[str, Any], step: int) -> Any:
        return None

    def emit(self, trigger: str, data: dict[str, Any], depth: int) -> None:
        pass

    def on_step(self, step: dict[str, Any]) -> None:
        pass


def compile_message(template: str):
    text = HEAD + 'rule "r" when booking.made then\n  log(message: "' + template + '")\nend\n'
    program = check_program([Source("bench.rules", text)])
    assert program.ok, program.diagnostics
    return next(iter(compile_rules(program).values()))


def as_events(values: list[dt.datetime]) -> list[dict[str, Any]]:
    return [{"id": f"b{i}", "starts_at": value} for i, value in enumerate(values)]


def rule_pass(code, events: list[dict[str, Any]], clear: bool = False) -> float:
    """Seconds to run the rule once per event (the format cache emptied first when `clear`)."""
    host = NullHost()
    if clear:
        formatting.format_datetime.cache_clear()
    start = time.perf_counter()
    for event in events:
        result = run(code, start_frame(code, event), host)
    elapsed = time.perf_counter() - start
    assert isinstance(result, Done), result
    return elapsed


def babel_pass(values: list[dt.datetime]) -> float:
    """The user's baseline: Babel called directly in a Python loop."""
    zone = ZoneInfo("Europe/Paris")
    start = time.perf_counter()
    for value in values:
        text = "Rendez-vous le " + dates.format_datetime(value, PATTERN, tzinfo=zone, locale="fr_FR")
    elapsed = time.perf_counter() - start
    assert text.startswith("Rendez-vous le ")
    return elapsed


def function_pass(values: list[dt.datetime]) -> float:
    """whenthen's format_datetime alone, as the VM calls it, every value new (cache emptied)."""
    context = FunctionContext(START, "Europe/Paris")
    formatting.format_datetime.cache_clear()
    start = time.perf_counter()
    for value in values:
        text = "Rendez-vous le " + call_function("format_datetime", [value, PATTERN, "fr_FR"], context)
    elapsed = time.perf_counter() - start
    assert text.startswith("Rendez-vous le ")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--renders", type=int, default=20000)
    parser.add_argument("--distinct", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    n, k = args.renders, args.distinct
    distinct = [START + dt.timedelta(minutes=17 * i) for i in range(n)]
    pooled = [distinct[i % k] for i in range(n)]

    plain = compile_message("Rendez-vous le {starts_at}")
    formatted = compile_message("Rendez-vous le {format_datetime(starts_at, '" + PATTERN + "')}")
    cases = {
        "plain": lambda: rule_pass(plain, as_events(distinct)),
        "pooled": lambda: rule_pass(formatted, as_events(pooled)),
        "fresh": lambda: rule_pass(formatted, as_events(distinct), clear=True),
        "babel": lambda: babel_pass(distinct),
        "function": lambda: function_pass(distinct),
    }
    # the cases take turns in every round, so a burst of load on the shared machine hits all of them
    best = dict.fromkeys(cases, float("inf"))
    for _ in range(args.repeat):
        for name, case in cases.items():
            best[name] = min(best[name], case())
    plain_rate, pooled_rate, fresh_rate, direct_rate, function_alone = (n / best[name] for name in cases)

    rows = [
        ("plain {starts_at}", plain_rate),
        (f"format_datetime, {k} distinct datetimes", pooled_rate),
        (f"format_datetime, {n} distinct (cache emptied)", fresh_rate),
        ("Babel called directly (a Python loop)", direct_rate),
        (f"whenthen's format_datetime alone, {n} distinct", function_alone),
    ]
    print(f"{n} renders each, best of {args.repeat} rounds")
    for label, rate in rows:
        print(f"{label:48s} {rate:10.0f} renders/s  {rate / plain_rate:6.2f}x plain  {rate / direct_rate:6.2f}x Babel")
    print(f"target: format_datetime at >= 0.50x plain: {pooled_rate / plain_rate:.2f}x with {k} distinct values, "
          f"{fresh_rate / plain_rate:.2f}x when every value is new")


if __name__ == "__main__":
    main()
