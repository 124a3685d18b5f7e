"""Input that fights back: a pathological regex, and an unrelated `emit` during a fan-out storm.

Run: python bench/hostile.py [--sizes 28,1000,100000] [--storm 20000] [--samples 5]

- regex: one `Engine.emit` whose rule filters on `body matches '(a+)+$'` with a payload of N `a`s
  and a `b` (the catastrophic case for a backtracking engine: 29 s at N = 28 before RE2),
  against the baseline `body = 'x'` on the same payload, best of 5, in the same run;
- storm: a process emits an event whose rule emits its own trigger twice (fan-out budget raised
  to --storm runs and events); meanwhile another process emits an unrelated event, --samples
  times; its wall time (process start to exit) against the same command with no storm.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from whenthen.api import compile as compile_rules  # noqa: E402
from whenthen.runtime.engine import Engine  # noqa: E402

REGEX_RULES = """
trigger msg.in { body: str }
rule "R" when msg.in where body {condition} then
end
"""

STORM = """
trigger storm.ping { n: int }
trigger other.thing { id: str }
rule "Storm" when storm.ping then
  emit storm.ping(n: n + 1)
  emit storm.ping(n: n + 1)
end
rule "Other" when other.thing then log(message: "other {id}")
"""


def best_emit(condition: str, body: str, root: Path) -> float:
    engine = Engine(root / f"r{abs(hash(condition))}.db")
    engine.publish(compile_rules(REGEX_RULES.replace("{condition}", condition)), enable=True)
    times = []
    for _ in range(5):
        started = time.perf_counter()
        engine.emit("msg.in", {"body": body})
        times.append(time.perf_counter() - started)
    engine.close()
    return min(times)


def regex(sizes: list[int], root: Path) -> None:
    print("| N (`a`s, then `b`) | `matches '(a+)+$'` | baseline `= 'x'` | ratio |")
    print("|---:|---:|---:|---:|")
    for n in sizes:
        body = "a" * n + "b"
        slow = best_emit("matches '(a+)+$'", body, root)
        base = best_emit("= 'x'", body, root)
        print(f"| {n:,} | {slow * 1000:.2f} ms | {base * 1000:.2f} ms | {slow / base:.2f}x |")


def storm(budget: int, samples: int, root: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("WHENTHEN_DB", "WHENTHEN_NOW")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1] / "src")
    wt = [sys.executable, "-m", "whenthen", "--db", str(root / "s.db")]
    (root / "s.rules").write_text(STORM)
    subprocess.run([*wt, "publish", str(root / "s.rules"), "--enable"], env=env, check=True, capture_output=True)

    def other(i: int) -> float:
        started = time.perf_counter()
        subprocess.run([*wt, "emit", "other.thing", f'{{"id": "o{i}"}}'], env=env, check=True, capture_output=True)
        return time.perf_counter() - started

    quiet = [other(i) for i in range(samples)]
    storm_env = {**env, "WHENTHEN_FAN_OUT_RUNS": str(budget), "WHENTHEN_FAN_OUT_EVENTS": str(budget)}
    started = time.perf_counter()
    proc = subprocess.Popen([*wt, "emit", "storm.ping", '{"n": 0}'], env=storm_env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    during = []
    for i in range(samples):
        if proc.poll() is not None:
            break
        during.append(other(100 + i))
    proc.wait()
    storm_seconds = time.perf_counter() - started
    print(f"storm: {budget:,} runs and events, {storm_seconds:.1f} s in all")
    print(f"unrelated emit, no storm: median {statistics.median(quiet):.2f} s, max {max(quiet):.2f} s "
          f"({len(quiet)} samples)")
    if during:
        print(f"unrelated emit during the storm: median {statistics.median(during):.2f} s, max {max(during):.2f} s "
              f"({len(during)} samples; {statistics.median(during) / statistics.median(quiet):.2f}x the quiet median)")
    else:
        print("the storm ended before a sample: give --storm a larger budget")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="28,1000,100000")
    parser.add_argument("--storm", type=int, default=20000)
    parser.add_argument("--samples", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        regex([int(n) for n in args.sizes.split(",")], Path(tmp))
        storm(args.storm, args.samples, Path(tmp))


if __name__ == "__main__":
    main()
