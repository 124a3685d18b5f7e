"""Benchmark: the durable engine on PostgreSQL, against raw psycopg and against itself.

Run: python bench/pg.py --db postgresql://postgres@127.0.0.1:5433/postgres [--events 2000]
     [--jobs 600] [--pings 100] [--only emit,workers,pickup]

The URL names a server and a database to connect to first; the script creates its own scratch
databases there (`--prefix`, default `whenthen_bench`; dropped at the end unless `--keep`), so the
role needs CREATEDB. Reports, measured in one run on one machine:
- emit: events/s through `Engine.emit` (each event validated, recorded, filtered, starting a run
  that suspends at `wait 1h`), against raw psycopg writing the same rows (event, run with its
  frame blob, event marked processed) with the same commit policy: one commit per event;
- ingest: `Engine.ingest` (one commit per 100 lines) against the same raw rows committed every
  100 events;
- workers: `whenthen worker` processes draining queued events whose run calls one host action,
  4 workers against 1, with 5 ms actions and with instant ones;
- pickup: with 4 workers idle, the time from an event's commit (`emit(..., dispatch=False)`
  returning) to its action being called in a worker: p50, p95, max.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from whenthen.api import compile as compile_rules  # noqa: E402
from whenthen.runtime.engine import Engine, load_actions_module  # noqa: E402

JOBS = """
trigger job.created { id: str, size: int, owner: str }
rule "Job" when job.created where size > 0 then
  wait 1h
  log(message: "done {id}")
end
"""

WORK = """
trigger task.queued { id: str }
rule "Task" when task.queued then work(id: id)
"""

ACTIONS = """
import os, time


def work(id: str) -> dict:
    seconds = float(os.environ.get("BENCH_ACTION_SECONDS", "0"))
    if seconds:
        time.sleep(seconds)
    # one short O_APPEND write: atomic, so lines of concurrent workers never interleave
    with open(os.environ["BENCH_LOG"], "a") as log:
        log.write(f"{id} {time.time():.6f}\\n")
    return {"ok": True}
"""


class Server:
    """Scratch databases on one PostgreSQL server."""

    def __init__(self, url: str, prefix: str, keep: bool):
        self.url, self.prefix, self.keep = url, prefix, keep
        self.made: list[str] = []

    def database(self, name: str) -> str:
        full = f"{self.prefix}_{name}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{full}"')
            conn.execute(f'CREATE DATABASE "{full}"')
        self.made.append(full)
        return self.url_of(full)

    def url_of(self, name: str) -> str:
        base, _, rest = self.url.rpartition("/")
        query = rest.partition("?")[2]
        return f"{base}/{name}" + (f"?{query}" if query else "")

    def drop_all(self) -> None:
        if self.keep:
            return
        with psycopg.connect(self.url, autocommit=True) as conn:
            for name in self.made:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Folder:
    """Scratch SQLite files instead (`--db` a folder): the workers and pickup parts, for comparison."""

    def __init__(self, path: str):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)

    def database(self, name: str) -> str:
        db = self.path / f"{name}.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        return str(db)

    def drop_all(self) -> None:
        pass


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:,.0f}/s ({count:,} in {seconds:.2f} s)"


def engine_on(url: str, rules: str, actions: Path | None = None) -> Engine:
    engine = Engine(url)
    if actions is not None:
        for fn in load_actions_module(str(actions)):
            engine.action(fn)
    engine.publish(compile_rules(rules, engine.schema), enable=True)
    return engine


# ---------------------------------------------------------------------------------------- emit, ingest


def bench_emit(server: Server, n: int) -> None:
    events = [{"id": f"j{i}", "size": 1 + i % 5, "owner": "bench"} for i in range(n)]
    engine = engine_on(server.database("emit"), JOBS)
    start = time.perf_counter()
    for data in events:
        engine.emit("job.created", data)
    emit_s = time.perf_counter() - start
    waiting = len(engine.runs(status="waiting"))
    engine.close()
    assert waiting == n, waiting

    engine = engine_on(server.database("ingest"), JOBS)
    lines = [json.dumps({"trigger": "job.created", "data": d}) for d in events]
    start = time.perf_counter()
    accepted, rejected = engine.ingest(lines)
    ingest_s = time.perf_counter() - start
    engine.close()
    assert accepted == n and not rejected, (accepted, rejected[:3])

    with psycopg.connect(server.url_of(f"{server.prefix}_emit")) as conn:
        frame = bytes(conn.execute("SELECT frame FROM runs LIMIT 1").fetchone()[0])
    raw_s = raw_psycopg(server.database("raw"), events, frame)
    raw_batched_s = raw_psycopg(server.database("raw_batched"), events, frame, commit_every=100)

    print(f"emit            {rate(n, emit_s)}  = {raw_s / emit_s:.0%} of raw psycopg")
    print(f"raw psycopg     {rate(n, raw_s)}  (same rows, one commit per event)")
    print(f"ingest          {rate(n, ingest_s)}  = {raw_batched_s / ingest_s:.0%} of raw psycopg batched "
          "(commit every 100 lines)")
    print(f"raw batched     {rate(n, raw_batched_s)}  (same rows, one commit per 100 events)")


def raw_psycopg(url: str, events: list[dict], frame: bytes, commit_every: int = 1) -> float:
    """What a user would write by hand: three statements per event, in one transaction per event
    (or per `commit_every` events), on one connection."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE events (id BIGSERIAL PRIMARY KEY, trigger TEXT, data TEXT, at TEXT, status TEXT)")
        conn.execute("CREATE TABLE runs (id BIGSERIAL PRIMARY KEY, rule TEXT, version INT, event_id BIGINT, "
                     "status TEXT, frame BYTEA, deadline DOUBLE PRECISION, started_at TEXT)")
        conn.execute("CREATE INDEX runs_due ON runs (deadline, id) WHERE status = 'waiting'")
        start = time.perf_counter()
        for first in range(0, len(events), commit_every):
            with conn.transaction():
                for data in events[first:first + commit_every]:
                    event_id = conn.execute(
                        "INSERT INTO events (trigger, data, at, status) VALUES (%s, %s, %s, 'processing') RETURNING id",
                        ("job.created", json.dumps(data), "2026-11-22T10:00:00Z")).fetchone()[0]
                    conn.execute("INSERT INTO runs (rule, version, event_id, status, frame, deadline, started_at) "
                                 "VALUES ('Job', 1, %s, 'waiting', %s, %s, %s)",
                                 (event_id, frame, 0.0, "2026-11-22T10:00:00Z"))
                    conn.execute("UPDATE events SET status = 'processed' WHERE id = %s", (event_id,))
        return time.perf_counter() - start


# ---------------------------------------------------------------------------------------- workers


class Workers:
    """`whenthen worker` processes on one database, running `work` from an actions file that logs
    each call's id and time."""

    def __init__(self, url: str, folder: Path, action_seconds: float):
        self.url, self.folder, self.action_seconds = url, folder, action_seconds
        self.log = folder / "calls.log"
        self.actions = folder / "actions.py"
        self.actions.write_text(ACTIONS)
        os.environ["BENCH_LOG"] = str(self.log)  # for this process's engine, which registers `work` too
        self.engine = engine_on(url, WORK, self.actions)
        self.procs: list[subprocess.Popen] = []

    def start(self, count: int) -> None:
        env = dict(os.environ, BENCH_LOG=str(self.log), BENCH_ACTION_SECONDS=str(self.action_seconds))
        env.pop("WHENTHEN_NOW", None)
        for _ in range(count):
            self.procs.append(subprocess.Popen(
                [sys.executable, "-m", "whenthen", "--db", self.url, "worker", "--actions", str(self.actions)],
                env=env, stdout=subprocess.DEVNULL, stderr=open(self.folder / "workers.err", "ab")))  # noqa: SIM115
        # every worker ready and idle: each has taken part in the warm-up (or the time is up)
        self.queue(["warm-up"] * (8 * count))
        self.wait_calls(8 * count, timeout=60)
        time.sleep(1.0)

    def queue(self, ids: list[str]) -> float:
        """Commit events for `ids` in one transaction; returns the time of the commit."""
        with self.engine.store.group():
            for task in ids:
                self.engine.emit("task.queued", {"id": task}, dispatch=False)
        return time.time()

    def calls(self) -> list[tuple[str, float]]:
        if not self.log.exists():
            return []
        lines = self.log.read_text().splitlines()
        return [(line.split()[0], float(line.split()[1])) for line in lines if line.count(" ") == 1]

    def wait_calls(self, count: int, timeout: float) -> list[tuple[str, float]]:
        deadline = time.time() + timeout
        while len(calls := self.calls()) < count:
            dead = [p.returncode for p in self.procs if p.poll() is not None]
            if dead or time.time() > deadline:
                err = (self.folder / "workers.err").read_text(errors="replace")[-3000:]
                raise SystemExit(f"workers stuck at {len(calls)}/{count} calls (exited: {dead})\n{err}")
            time.sleep(0.005)
        return calls

    def stop(self) -> None:
        for proc in self.procs:
            proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.engine.close()


def drain_rate(server: Server, tmp: Path, workers: int, jobs: int, action_seconds: float) -> float:
    """Runs per second for `workers` processes draining `jobs` queued events (from their commit to
    the last action call)."""
    name = f"w{workers}_{int(action_seconds * 1000)}ms"
    folder = tmp / name
    folder.mkdir()
    pool = Workers(server.database(name), folder, action_seconds)
    try:
        pool.start(workers)
        before = len(pool.calls())
        committed = pool.queue([f"t{i}" for i in range(jobs)])
        calls = pool.wait_calls(before + jobs, timeout=600)
        last = max(at for _, at in calls[before:])
    finally:
        pool.stop()
    done = {task for task, _ in calls[before:]}
    assert len(done) == jobs, f"{jobs - len(done)} task(s) missing, {len(calls) - before - len(done)} repeated"
    return jobs / (last - committed)


def bench_workers(server: Server, tmp: Path, jobs: int) -> None:
    for action_seconds in (0.005, 0.0):
        one = drain_rate(server, tmp, 1, jobs, action_seconds)
        four = drain_rate(server, tmp, 4, jobs, action_seconds)
        label = f"{action_seconds * 1000:.0f} ms actions" if action_seconds else "instant actions"
        print(f"workers, {label:16} 1: {one:,.0f} runs/s   4: {four:,.0f} runs/s   = {four / one:.2f}x "
              f"({jobs:,} queued events, each starting a run that calls one host action)")


# ---------------------------------------------------------------------------------------- pickup


def bench_pickup(server: Server, tmp: Path, pings: int) -> None:
    folder = tmp / "pickup"
    folder.mkdir()
    pool = Workers(server.database("pickup"), folder, 0.0)
    rng = random.Random(5)
    latencies = []
    try:
        pool.start(4)
        for i in range(pings):
            time.sleep(rng.uniform(0.1, 0.4))  # the workers are idle again
            before = len(pool.calls())
            committed = pool.queue([f"p{i}"])
            calls = pool.wait_calls(before + 1, timeout=30)
            latencies.append(calls[before][1] - committed)
    finally:
        pool.stop()
    latencies.sort()
    ms = [x * 1000 for x in latencies]
    print(f"pickup with 4 idle workers: p50 {statistics.median(ms):.1f} ms, "
          f"p95 {ms[int(len(ms) * 0.95) - 1]:.1f} ms, max {ms[-1]:.1f} ms "
          f"({pings} events, from commit to the action call in a worker)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True,
                        help="postgresql:// URL of a server (the scratch databases go there), or a folder for "
                        "SQLite files (workers and pickup only)")
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--jobs", type=int, default=600)
    parser.add_argument("--pings", type=int, default=100)
    parser.add_argument("--only", default="emit,workers,pickup")
    parser.add_argument("--prefix", default="whenthen_bench")
    parser.add_argument("--keep", action="store_true", help="keep the scratch databases")
    args = parser.parse_args()
    parts = set(args.only.split(","))
    server: Server | Folder
    if args.db.startswith(("postgresql://", "postgres://")):
        server = Server(args.db, args.prefix, args.keep)
        with psycopg.connect(args.db) as conn:
            backend = "PostgreSQL " + conn.execute("SHOW server_version").fetchone()[0]
    else:
        server, backend = Folder(args.db), "SQLite files in " + args.db
        if "emit" in parts:
            parser.error("the emit part compares with raw psycopg: give a postgresql:// URL")
    print(f"python {sys.version.split()[0]}, psycopg {psycopg.__version__}, {backend}, {os.cpu_count()} cores")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            if "emit" in parts:
                bench_emit(server, args.events)
            if "workers" in parts:
                bench_workers(server, Path(tmp), args.jobs)
            if "pickup" in parts:
                bench_pickup(server, Path(tmp), args.pings)
    finally:
        server.drop_all()


if __name__ == "__main__":
    main()
