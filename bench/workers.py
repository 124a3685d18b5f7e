"""Benchmark: throughput of N worker processes on one database against one worker.

Run: python bench/workers.py [--db DIR_OR_URL] [--workers 1,2,4] [--events 2000] [--slow-events 600]

Each measurement starts from a fresh database holding one active rule,
`rule "Job" when job.created then work(id: id) end`, where `work` is a host action that returns
at once ("instant") or after sleeping 5 ms ("5 ms"), and `--events` (or `--slow-events`) events
enqueued with `emit(dispatch=False)`. N worker processes (forked; each opens its own `Engine` and
runs `Engine.work` until no event is left to claim) then start together behind a barrier; the time
is from the barrier to the last worker's end. Each event costs a claim, a dispatch that starts a
run, the action journaled (intent committed before the call, result after) and the run's commit.

Reports events/s per N and the ratio to one worker, measured in the same run. `--db` is a folder
for the SQLite files (default: a temporary one) or a `postgresql://` URL of a server on which the
script creates and drops one database per measurement (`whenthen_bench_workers_N`).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from whenthen.api import compile as compile_rules  # noqa: E402
from whenthen.runtime.engine import Engine  # noqa: E402

RULES = """
trigger job.created { id: str }
rule "Job" when job.created then work(id: id) end
"""


def work_action(delay: float) -> Any:
    def work(id: str) -> None:  # noqa: A002 - the rule's argument name
        if delay:
            time.sleep(delay)
    return work


class Target:
    """Where one measurement's database lives: a fresh SQLite file, or a fresh PostgreSQL database."""

    def __init__(self, base: str):
        self.base = base
        self.url = base.startswith(("postgresql://", "postgres://"))
        self.count = 0

    def fresh(self) -> str:
        self.count += 1
        if not self.url:
            path = Path(self.base) / f"workers{self.count}.db"
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            return str(path)
        import psycopg  # only for PostgreSQL

        name = f"whenthen_bench_workers_{self.count}"
        with psycopg.connect(self.base, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name}")
            conn.execute(f"CREATE DATABASE {name}")
        head, _, _ = self.base.rpartition("/")
        return f"{head}/{name}"


def setup(db: str, events: int, delay: float) -> None:
    engine = Engine(db)
    engine.action(work_action(delay), name="work")
    engine.publish(compile_rules(RULES, engine.schema), enable=True)
    with engine.store.batch():
        for i in range(events):
            engine.emit("job.created", {"id": f"j{i}"}, dispatch=False)
    engine.close()


def worker(db: str, delay: float, barrier: Any, results: Any) -> None:
    engine = Engine(db)
    engine.action(work_action(delay), name="work")
    engine.trigger_schema("job.created")  # load rules and declarations before the clock starts
    barrier.wait()
    start = time.perf_counter()
    done = engine.work(idle=0.01, stop=lambda: not engine.store.has_claimable_event(time.time()))
    results.put((start, time.perf_counter(), done))
    engine.close()


def measure(target: Target, workers: int, events: int, delay: float) -> float:
    """Events per second with `workers` processes; checks every run completed."""
    db = target.fresh()
    setup(db, events, delay)
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(workers), ctx.Queue()
    procs = [ctx.Process(target=worker, args=(db, delay, barrier, results)) for _ in range(workers)]
    for p in procs:
        p.start()
    ends = [results.get(timeout=600) for _ in procs]
    for p in procs:
        p.join()
    engine = Engine(db)
    completed = len(engine.runs(status="completed"))
    engine.close()
    assert completed == events, (workers, completed, events)
    assert sum(done for _, _, done in ends) == events
    return events / (max(end for _, end, _ in ends) - min(start for start, _, _ in ends))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default=None, help="folder for SQLite files, or a postgresql:// URL")
    parser.add_argument("--workers", default="1,2,4", help="worker counts, comma-separated (1 is the baseline)")
    parser.add_argument("--events", type=int, default=2000, help="events with the instant action")
    parser.add_argument("--slow-events", type=int, default=600, help="events with the 5 ms action")
    parser.add_argument("--repeat", type=int, default=3, help="measurements per row, taking turns (the best is kept)")
    args = parser.parse_args()
    counts = sorted({int(n) for n in args.workers.split(",")} | {1})
    print(f"python {platform.python_version()}, sqlite {sqlite3.sqlite_version}, {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        target = Target(args.db or tmp)
        print(f"database: {'PostgreSQL' if target.url else 'SQLite'}\n")
        print(f"{'action':<9}{'workers':>8}  {'events/s':>10}  {'vs 1 worker':>11}")
        for label, events, delay in (("instant", args.events, 0.0), ("5 ms", args.slow_events, 0.005)):
            # the counts take turns, so a burst of load from elsewhere on the machine hits all of them
            best = dict.fromkeys(counts, 0.0)
            for _ in range(args.repeat):
                for n in counts:
                    best[n] = max(best[n], measure(target, n, events, delay))
            for n in counts:
                print(f"{label:<9}{n:>8}  {best[n]:>10,.0f}  {best[n] / best[1]:>10.2f}x", flush=True)


if __name__ == "__main__":
    main()
