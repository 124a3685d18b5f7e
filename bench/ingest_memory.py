"""`whenthen ingest` memory and rate on a large generated file, against a baseline in the same run.

Run: python bench/ingest_memory.py [--mb 60] [--line-bytes 200]

Writes a JSONL file of about `--mb` megabytes (lines of about `--line-bytes` bytes; one line in
100 is bad: not UTF-8, not JSON or a missing field), publishes one rule that starts a run for a
tenth of the events, then runs, each as its own process, measuring its peak RSS
(`getrusage(RUSAGE_CHILDREN).ru_maxrss` in a wrapper process):
- baseline: `whenthen rules` on the same database (the interpreter, the package, an open store);
- `whenthen ingest FILE`.
Reports the file size, both peak RSS values, their difference, the wall time and lines per second.
The old reader held the whole file and its lines: 170 MB of RSS for 54 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

RULES = """
trigger order.placed { id: str, customer: str, amount: float, country: str, note: str? }

rule "Big orders"
when order.placed where amount > 900
then
  log(message: "big order {id} from {customer}")
end
"""

PROBE = ("import resource, subprocess, sys, time;"
         "t = time.perf_counter();"
         "p = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True);"
         "print(p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, time.perf_counter() - t);"
         "print(p.stderr[-400:], file=sys.stderr)")


def write_file(path: Path, megabytes: float, line_bytes: int) -> int:
    """About `megabytes` of event lines; returns how many lines."""
    target = int(megabytes * 1_000_000)
    written = lines = 0
    pad = max(0, line_bytes - 120)
    with open(path, "wb") as f:
        while written < target:
            i = lines
            if i % 100 == 57:
                line = b'{"trigger": "order.placed", "data": {"id": "o%d", "customer": "c\xff"}}' % i
            elif i % 100 == 83:
                line = b'{"trigger": "order.placed", "data": {"id": '
            elif i % 100 == 91:
                line = json.dumps({"trigger": "order.placed", "data": {"id": f"o{i}"}}).encode()
            else:
                data = {"id": f"o{i}", "customer": f"c{i % 997}", "amount": float(i % 1000),
                        "country": "FR", "note": "n" * pad}
                line = json.dumps({"trigger": "order.placed", "data": data}).encode()
            f.write(line + b"\n")
            written += len(line) + 1
            lines += 1
    return lines


def measure(argv: list[str]) -> tuple[int, int, float, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("WHENTHEN_DB", "WHENTHEN_NOW")}
    proc = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, env=env)
    status, rss, seconds = proc.stdout.split()
    return int(status), int(rss), float(seconds), proc.stderr.strip()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=float, default=60.0)
    parser.add_argument("--line-bytes", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "r.rules").write_text(RULES)
        events = root / "events.jsonl"
        lines = write_file(events, args.mb, args.line_bytes)
        size = events.stat().st_size
        wt = [sys.executable, "-m", "whenthen", "--db", str(root / "wt.db")]
        subprocess.run([*wt, "publish", str(root / "r.rules"), "--enable"], check=True, capture_output=True)
        _, base_rss, _, _ = measure([*wt, "rules"])
        status, rss, seconds, tail = measure([*wt, "ingest", str(events)])
        print(f"file: {size / 1e6:.1f} MB, {lines:,} lines of about {size // lines} bytes")
        print(f"baseline (whenthen rules) peak RSS: {base_rss / 1024:.1f} MB")
        print(f"ingest peak RSS: {rss / 1024:.1f} MB ({rss / base_rss:.2f}x the baseline, "
              f"+{(rss - base_rss) / 1024:.1f} MB); exit {status}")
        print(f"ingest wall: {seconds:.1f} s, {lines / seconds:,.0f} lines/s")
        print("ingest said:", tail.splitlines()[-1] if tail else "")


if __name__ == "__main__":
    main()
