"""Filter evaluation against peer packages: the same conditions over the same events.

Run: pip install -e '.[bench]' && python bench/peers.py [--events 200000] [--repeat 3]

Ways, on the conditions of bench/filters.py (simple: `category = 'VIP' and first_name = 'John'`;
heavy: `in`, `!=`, `>=` on an optional int, `ends with`):
- hand-written Python (the limit),
- whenthen's filter path as the engine uses it (`LoadedRule.accepts` of a published, active
  rule: the generated function from runtime/fast.py),
- rule-engine, cel-python and simpleeval, each with its expression parsed once, then evaluated
  on each event dict (cel-python needs its own value types: converting the event is part of
  its cost, as it would be for a host holding Python dicts).

Every way must count the same matches as the hand-written function (so nobody measures
something easier), and each peer's expression is written to mean what the whenthen condition
means on these events, nulls included. Prints evaluations/s and the time ratio to hand-written;
a way is timed `--repeat` times (best kept) unless one pass exceeds `--budget` seconds.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from filters import HEAVY, SCHEMA, SIMPLE, heavy_by_hand, make_events, simple_by_hand  # noqa: E402

from whenthen.api import compile as compile_rules  # noqa: E402
from whenthen.runtime.engine import Engine  # noqa: E402

Check = Callable[[dict[str, Any]], Any]

# The same conditions in each peer's language (nulls handled as whenthen does: a comparison with
# null is false; `company != 'Eventmaker'` is true when company is null).
PEER_EXPRESSIONS = {
    "simple": {
        "rule-engine": "category == 'VIP' and first_name == 'John'",
        "cel-python": "category == 'VIP' && first_name == 'John'",
        "simpleeval": "category == 'VIP' and first_name == 'John'",
    },
    "heavy": {
        "rule-engine": "category in ['VIP', 'Press'] and company != 'Eventmaker' and age != null and age >= 18 "
                       "and email.ends_with('@example.com')",
        "cel-python": "category in ['VIP', 'Press'] && company != 'Eventmaker' && type(age) == int && age >= 18 "
                      "&& email.endsWith('@example.com')",
        "simpleeval": "category in ('VIP', 'Press') and company != 'Eventmaker' and age is not None and age >= 18 "
                      "and email.endswith('@example.com')",
    },
}


def whenthen_filters() -> dict[str, Check]:
    """The filters exactly as the engine dispatches them: published, active, loaded."""
    engine = Engine(":memory:")
    text = SCHEMA + "".join(f'rule "{name}" when guest.added where {cond} then\nend\n'
                            for name, cond in (("simple", SIMPLE), ("heavy", HEAVY)))
    engine.publish(compile_rules(text, engine.schema), enable=True)
    engine.trigger_schema("guest.added")  # loads the active rules
    return {loaded.name: loaded.accepts for loaded in engine.catalog.starts["guest.added"].rules}


def rule_engine_check(expr: str) -> Check:
    import rule_engine

    return rule_engine.Rule(expr).matches


def cel_check(expr: str) -> Check:
    import celpy

    env = celpy.Environment()
    program = env.program(env.compile(expr))
    json_to_cel = celpy.json_to_cel

    def check(event: dict[str, Any]) -> bool:
        try:
            return bool(program.evaluate(json_to_cel(event)))
        except celpy.CELEvalError:
            return False

    return check


def simpleeval_check(expr: str) -> Check:
    import simpleeval

    evaluator = simpleeval.EvalWithCompoundTypes()
    parsed = evaluator.parse(expr)

    def check(event: dict[str, Any]) -> bool:
        evaluator.names = event
        return evaluator.eval(expr, previously_parsed=parsed)

    return check


PEERS: dict[str, Callable[[str], Check]] = {
    "rule-engine": rule_engine_check,
    "cel-python": cel_check,
    "simpleeval": simpleeval_check,
}


def rate(fn: Check, events: list[dict[str, Any]], repeat: int, budget: float) -> tuple[float, int]:
    """Best evaluations per second over up to `repeat` passes, and how many events passed."""
    best = float("inf")
    passed = 0
    for _ in range(repeat):
        start = time.perf_counter()
        passed = sum(1 for event in events if fn(event))
        elapsed = time.perf_counter() - start
        best = min(best, elapsed)
        if elapsed > budget:
            break
    return len(events) / best, passed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--budget", type=float, default=3.0, help="seconds: one pass longer than this is not repeated")
    args = parser.parse_args()
    events = make_events(args.events)
    filters = whenthen_filters()
    print(f"python {platform.python_version()}, {os.cpu_count()} cores; {args.events:,} events, "
          f"best of up to {args.repeat}\n")
    print(f"{'filter':<8} {'way':<14} {'evals/s':>12} {'x hand':>9} {'matches':>9}")
    failed = []
    for name, by_hand in (("simple", simple_by_hand), ("heavy", heavy_by_hand)):
        ways: dict[str, Check] = {"hand-written": by_hand, "whenthen": filters[name]}
        for peer, make in PEERS.items():
            try:
                ways[peer] = make(PEER_EXPRESSIONS[name][peer])
            except ImportError:
                print(f"{name:<8} {peer:<14} not installed (pip install -e '.[bench]')")
        expected = None
        hand_rate = 0.0
        for way, fn in ways.items():
            per_second, passed = rate(fn, events, args.repeat, args.budget)
            if way == "hand-written":
                expected, hand_rate = passed, per_second
            agrees = "" if passed == expected else f"  DISAGREES: {passed} != {expected}"
            if agrees:
                failed.append((name, way))
            print(f"{name:<8} {way:<14} {per_second:>12,.0f} {hand_rate / per_second:>8.2f}x {passed:>9,}{agrees}")
    if failed:
        sys.exit(f"these ways do not count the hand-written matches: {failed}")


if __name__ == "__main__":
    main()
