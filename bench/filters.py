"""Filter evaluation speed: the fast path, the plain VM and hand-written Python, on the same events.

Run: python bench/filters.py [--events N] [--repeat R]
Prints evaluations per second for each way and its ratio to the hand-written function.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from whenthen.compiler.checker import check_program
from whenthen.compiler.codegen import compile_rules
from whenthen.runtime.fast import compile_filter
from whenthen.runtime.vm import eval_filter
from whenthen.source import Source

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _schemas import GUEST_ADDED  # noqa: E402  (the trigger the tests use)

SCHEMA = GUEST_ADDED

SIMPLE = "category = 'VIP' and first_name = 'John'"
HEAVY = ("category in ['VIP', 'Press'] and company != 'Eventmaker' and age >= 18 "
         "and email ends with '@example.com'")


def simple_by_hand(event: dict[str, Any]) -> bool:
    return event.get("category") == "VIP" and event.get("first_name") == "John"


def heavy_by_hand(event: dict[str, Any]) -> bool:
    age = event.get("age")
    email = event.get("email")
    return (
        event.get("category") in ("VIP", "Press")
        and event.get("company") != "Eventmaker"
        and age is not None and age >= 18
        and email is not None and email.endswith("@example.com")
    )


def make_events(count: int, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [
        {
            "id": f"g{i}",
            "first_name": rng.choice(["John", "Jane", "Ann", "Bob"]),
            "email": f"u{i}@" + rng.choice(["example.com", "example.org"]),
            "category": rng.choice(["VIP", "Visitor", "Press"]),
            "company": rng.choice([None, "Acme", "Eventmaker"]),
            "age": rng.choice([None, 12, 17, 18, 30, 70]),
        }
        for i in range(count)
    ]


def rate(fn: Callable[[dict[str, Any]], bool], events: list[dict[str, Any]], repeat: int) -> tuple[float, int]:
    """Best evaluations per second over `repeat` passes, and how many events passed."""
    best = float("inf")
    passed = 0
    for _ in range(repeat):
        start = time.perf_counter()
        passed = sum(1 for event in events if fn(event))
        best = min(best, time.perf_counter() - start)
    return len(events) / best, passed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    events = make_events(args.events)
    text = SCHEMA + "".join(
        f'rule "{name}" when guest.added where {cond} then\nend\n' for name, cond in (("simple", SIMPLE), ("heavy", HEAVY))
    )
    program = check_program([Source("bench.rules", text)])
    assert program.ok, program.diagnostics
    codes = compile_rules(program)
    print(f"{args.events} events, best of {args.repeat}\n")
    print(f"{'filter':<8} {'way':<12} {'evals/s':>12} {'x hand':>8}")
    for name, by_hand in (("simple", simple_by_hand), ("heavy", heavy_by_hand)):
        code = codes[name]
        fast = compile_filter(code)
        ways = {
            "hand": by_hand,
            "fast path": fast,
            "vm": lambda event, code=code: eval_filter(code, event),
        }
        results = {way: rate(fn, events, args.repeat) for way, fn in ways.items()}
        assert len({passed for _, passed in results.values()}) == 1, "the three ways disagree"
        hand_rate = results["hand"][0]
        for way, (per_second, _) in results.items():
            print(f"{name:<8} {way:<12} {per_second:>12,.0f} {hand_rate / per_second:>7.2f}x")


if __name__ == "__main__":
    main()
