"""Loop cost: a `for` over N items of a payload list against the same N action calls written out.

Run: python bench/loops.py [--items N] [--repeat R]
Runs each rule body in the VM with a host whose actions do nothing, R times, and prints runs per
second and the ratio written-out / loop (SPEC target for issue 17: the loop costs at most 2x).
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from typing import Any

from whenthen.compiler.checker import check_program
from whenthen.compiler.codegen import compile_rules
from whenthen.runtime.vm import Done, run, start_frame
from whenthen.source import Source

SCHEMA = "trigger order.placed { id: str, lines: list[str] }\naction notify(line: str)\n"
NOW = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)


class NullHost:
    """The cheapest host: actions return null, nothing is recorded."""

    def now(self) -> dt.datetime:
        return NOW

    def call_action(self, name: str, args: dict[str, Any], step: int) -> Any:
        return None

    def emit(self, trigger: str, data: dict[str, Any], depth: int) -> None:
        pass

    def on_step(self, step: dict[str, Any]) -> None:
        pass


def compile_body(body: str):
    text = SCHEMA + 'rule "r" when order.placed then\n' + body + "\nend\n"
    program = check_program([Source("bench.rules", text)])
    assert program.ok, program.diagnostics
    return next(iter(compile_rules(program).values()))


def rate(code, event: dict[str, Any], repeat: int) -> float:
    host = NullHost()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        result = run(code, start_frame(code, event), host)
        best = min(best, time.perf_counter() - start)
        assert isinstance(result, Done), result
    return 1 / best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    lines = [f"line {i}" for i in range(args.items)]
    event = {"id": "o1", "lines": lines}
    loop = compile_body("for l in lines\n  notify(line: l)\nend")
    written = compile_body("\n".join(f"notify(line: '{line}')" for line in lines))
    loop_rate = rate(loop, event, args.repeat)
    written_rate = rate(written, event, args.repeat)
    print(f"for over {args.items} items:      {loop_rate:10.1f} runs/s")
    print(f"{args.items} calls written out:   {written_rate:10.1f} runs/s")
    print(f"loop cost / written-out cost: {written_rate / loop_rate:.2f}x (target: at most 2x)")


if __name__ == "__main__":
    main()
