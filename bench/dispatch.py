"""Dispatch at scale: events per second against the number of active rules.

Run: python bench/dispatch.py [--events 20000] [--emits 2000]

Two shapes, each rule requiring `field = constant` plus another comparison, one rule matching
(or none) per event:
- spread: N rules over 100 triggers (`when tK where owner = 'oJ' and size > 0`), N up to 10,000;
- same field: N rules on one trigger, each testing the same field against its own constant
  (`when order.placed where country = 'cJ' and amount >= J`), N up to 1,000.

For each N it reports, measured in one run:
- in-process dispatch: the engine's own structure (`_TriggerRules.candidates` + the compiled
  filters of the candidates), without storage, events/s;
- the baseline for the same-field shape: evaluating all N compiled filters one by one, as an
  engine without the equality index would (the ratio is what the index buys);
- end-to-end `Engine.emit` on a SQLite file (validate, record, dispatch, start the matching run,
  which completes at once; one commit per event), events/s.
Every way must start the same runs as evaluating every filter (checked on the events).
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from whenthen.api import compile as compile_rules  # noqa: E402
from whenthen.runtime.engine import Engine, LoadedRule  # noqa: E402

TRIGGERS = 100


def spread_source(rules: int) -> tuple[str, Callable[[random.Random, int], tuple[str, dict[str, Any]]]]:
    per_trigger = max(1, rules // TRIGGERS)
    count = min(rules, TRIGGERS)
    decls = "".join(f"trigger t{k}.created {{ id: str, owner: str, size: int }}\n" for k in range(count))
    body = "".join(f"rule \"R{k}_{j}\" when t{k}.created where owner = 'o{j}' and size > 0 then\nend\n"
                   for k in range(count) for j in range(per_trigger))

    def event(rng: random.Random, i: int) -> tuple[str, dict[str, Any]]:
        # about one event in ten names an owner no rule has
        return f"t{rng.randrange(count)}.created", {"id": f"e{i}", "owner": f"o{rng.randrange(per_trigger + per_trigger // 10 + 1)}",
                                                   "size": rng.choice([0, 1, 5])}
    return decls + body, event


def same_field_source(rules: int) -> tuple[str, Callable[[random.Random, int], tuple[str, dict[str, Any]]]]:
    decls = "trigger order.placed { id: str, country: str, amount: int }\n"
    body = "".join(f"rule \"C{j}\" when order.placed where country = 'c{j}' and amount >= {j % 50} then\nend\n"
                   for j in range(rules))

    def event(rng: random.Random, i: int) -> tuple[str, dict[str, Any]]:
        return "order.placed", {"id": f"e{i}", "country": f"c{rng.randrange(rules + rules // 10 + 1)}",
                                "amount": rng.randrange(100)}
    return decls + body, event


def build(path: str, source: str) -> Engine:
    engine = Engine(path)
    engine.publish(compile_rules(source, engine.schema), enable=True)
    engine.trigger_schema("schedule.fired")  # loads and compiles the active rules
    return engine


def timed(fn: Callable[[], int], repeat: int = 3) -> tuple[float, int]:
    best, result = float("inf"), 0
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def in_process(engine: Engine, events: list[tuple[str, dict[str, Any]]]) -> dict[str, tuple[float, int]]:
    groups = engine.catalog.starts
    typed = [(groups[t], engine.trigger_schema(t), d) for t, d in events]
    from whenthen.runtime.events import validate_event

    typed = [(g, validate_event(s, d)) for g, s, d in typed]

    def indexed() -> int:
        return sum(1 for group, data in typed for loaded in group.candidates(data) if loaded.accepts(data))

    def one_by_one() -> int:
        return sum(1 for group, data in typed for loaded in group.rules if loaded.accepts(data))

    return {"indexed": timed(indexed), "one by one": timed(one_by_one)}


def end_to_end(engine: Engine, events: list[tuple[str, dict[str, Any]]]) -> tuple[float, int]:
    before = len(engine.runs())
    start = time.perf_counter()
    for trigger, data in events:
        engine.emit(trigger, data)
    return time.perf_counter() - start, len(engine.runs()) - before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000, help="events for the in-process measures")
    parser.add_argument("--emits", type=int, default=2_000, help="events emitted end to end, per row")
    args = parser.parse_args()
    print(f"python {platform.python_version()}, sqlite {sqlite3.sqlite_version}, {os.cpu_count()} cores\n")
    print(f"{'shape':<11}{'rules':>7}  {'indexed ev/s':>13}  {'one-by-one ev/s':>16}  {'index gain':>10}  "
          f"{'emit ev/s':>10}  {'runs/matches':>13}")
    shapes = (("spread", spread_source, (100, 1_000, 10_000)), ("same field", same_field_source, (1, 10, 100, 1_000)))
    with tempfile.TemporaryDirectory() as tmp:
        for shape, make, sizes in shapes:
            for rules in sizes:
                source, event = make(rules)
                rng = random.Random(rules)
                events = [event(rng, i) for i in range(args.events)]
                engine = build(str(Path(tmp) / f"{shape.replace(' ', '_')}{rules}.db"), source)
                ways = in_process(engine, events)
                (fast_s, fast_n), (slow_s, slow_n) = ways["indexed"], ways["one by one"]
                assert fast_n == slow_n, (shape, rules, fast_n, slow_n)
                emitted = events[:args.emits]
                emit_s, runs = end_to_end(engine, emitted)
                expected = sum(1 for t, d in emitted for r in engine.catalog.starts[t].rules if _accepts(r, engine, t, d))
                assert runs == expected, (shape, rules, runs, expected)
                engine.close()
                n = len(events)
                print(f"{shape:<11}{rules:>7,}  {n / fast_s:>13,.0f}  {n / slow_s:>16,.0f}  {slow_s / fast_s:>9.1f}x  "
                      f"{len(emitted) / emit_s:>10,.0f}  {runs:>6,}/{expected:<6,}")


def _accepts(loaded: LoadedRule, engine: Engine, trigger: str, data: dict[str, Any]) -> bool:
    from whenthen.runtime.events import validate_event

    return loaded.accepts(validate_event(engine.trigger_schema(trigger), data))


if __name__ == "__main__":
    main()
