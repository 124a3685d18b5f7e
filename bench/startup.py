"""Cold start: milliseconds to start the interpreter and do a small thing, best of N runs.

Run: python bench/startup.py [--runs 15]

Each case is a fresh subprocess (wall clock, `time.perf_counter` around `subprocess.run`):
- baseline: `python -c pass` (the interpreter and site-packages start, which every case pays);
- `python -c "import whenthen"`;
- `whenthen check FILE` on a small rules file (the console script, as a user runs it);
- `whenthen --help` (the CLI's own import cost, no compiler).
Reports the best and the median of `--runs` runs and the best minus the baseline's best.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SMALL = """\
trigger guest.added { id: str, first_name: str, email: str, category: 'VIP' | 'Visitor' | 'Press' }

rule "Welcome VIP"
when guest.added where category = 'VIP'
then
  send_email(to: email, subject: "Welcome {first_name}")
  wait 24h
  log(message: "followed up {id}")
end
"""


def timings(cmd: list[str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append((time.perf_counter() - start) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    script = shutil.which("whenthen") or sys.exit("the `whenthen` command is not on PATH (pip install -e .)")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "small.rules"
        path.write_text(SMALL, encoding="utf-8")
        cases = [
            ("python -c pass (baseline)", [sys.executable, "-c", "pass"]),
            ("import whenthen", [sys.executable, "-c", "import whenthen"]),
            ("whenthen check small.rules", [script, "check", str(path)]),
            ("whenthen --help", [script, "--help"]),
        ]
        subprocess.run(cases[2][1], check=True, capture_output=True)  # warm the OS cache and Lark's grammar cache
        print(f"python {platform.python_version()}, {os.cpu_count()} cores, best of {args.runs} runs\n")
        print(f"{'what':<30}{'best ms':>9}{'median ms':>11}{'best - baseline':>17}")
        base = None
        for name, cmd in cases:
            times = timings(cmd, args.runs)
            best = min(times)
            base = best if base is None else base
            print(f"{name:<30}{best:>9.0f}{statistics.median(times):>11.0f}{best - base:>17.0f}")


if __name__ == "__main__":
    main()
