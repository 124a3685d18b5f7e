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


def machine_busy(seconds: float = 3.0) -> str:
    """How busy the machine's CPUs were over `seconds` before the run (Linux /proc/stat): on a
    shared machine the ratios move with it."""
    def sample() -> tuple[int, int]:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = values[3] + values[4]
        return sum(values) - idle, idle

    try:
        busy0, idle0 = sample()
        time.sleep(seconds)
        busy1, idle1 = sample()
    except OSError:
        return "unknown"
    return f"{100 * (busy1 - busy0) / max(1, busy1 - busy0 + idle1 - idle0):.0f}% busy"


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


def bench_emit(server: Server, n: int, rounds: int = 10) -> None:
    """The engine and its raw baseline take turns, `rounds` chunks each, so that a change of load
    on a shared machine weighs on both alike."""
    events = [{"id": f"j{i}", "size": 1 + i % 5, "owner": "bench"} for i in range(n)]
    lines = [json.dumps({"trigger": "job.created", "data": d}) for d in events]
    emitter = engine_on(server.database("emit"), JOBS)
    ingester = engine_on(server.database("ingest"), JOBS)
    emitter.emit("job.created", {"id": "frame", "size": 1, "owner": "bench"})
    with psycopg.connect(server.url_of(f"{server.prefix}_emit")) as conn:
        frame = bytes(conn.execute("SELECT frame FROM runs LIMIT 1").fetchone()[0])
    raw = RawWriter(server.database("raw"), frame)
    raw_batched = RawWriter(server.database("raw_batched"), frame)
    took = dict.fromkeys(("emit", "ingest", "raw", "raw_batched"), 0.0)
    size = -(-n // rounds)
    for first in range(0, n, size):
        chunk, chunk_lines = events[first:first + size], lines[first:first + size]
        start = time.perf_counter()
        for data in chunk:
            emitter.emit("job.created", data)
        took["emit"] += time.perf_counter() - start
        took["raw"] += raw.write(chunk, commit_every=1)
        start = time.perf_counter()
        accepted, rejected = ingester.ingest(chunk_lines)
        took["ingest"] += time.perf_counter() - start
        assert accepted == len(chunk) and not rejected, (accepted, rejected[:3])
        took["raw_batched"] += raw_batched.write(chunk, commit_every=100)
    waiting = (len(emitter.runs(status="waiting")), len(ingester.runs(status="waiting")))
    emitter.close()
    ingester.close()
    raw.close()
    raw_batched.close()
    assert waiting == (n + 1, n), waiting

    print(f"emit            {rate(n, took['emit'])}  = {took['raw'] / took['emit']:.0%} of raw psycopg")
    print(f"raw psycopg     {rate(n, took['raw'])}  (same rows, one commit per event)")
    print(f"ingest          {rate(n, took['ingest'])}  = {took['raw_batched'] / took['ingest']:.0%} of raw psycopg "
          "batched (commit every 100 lines)")
    print(f"raw batched     {rate(n, took['raw_batched'])}  (same rows, one commit per 100 events)")
    print(f"  ({rounds} rounds, the four taking turns)")


class RawWriter:
    """What a user would write by hand: three statements per event (the event, the run with its
    frame, the event marked processed), one transaction per event (or per `commit_every`
    events), on one connection, psycopg's defaults (statements prepared after 5 uses)."""

    def __init__(self, url: str, frame: bytes):
        self.frame = frame
        self.conn = psycopg.connect(url, autocommit=True)
        self.conn.execute("CREATE TABLE events (id BIGSERIAL PRIMARY KEY, trigger TEXT, data TEXT, at TEXT, "
                          "status TEXT)")
        self.conn.execute("CREATE TABLE runs (id BIGSERIAL PRIMARY KEY, rule TEXT, version INT, event_id BIGINT, "
                          "status TEXT, frame BYTEA, deadline DOUBLE PRECISION, started_at TEXT)")
        self.conn.execute("CREATE INDEX runs_due ON runs (deadline, id) WHERE status = 'waiting'")

    def write(self, events: list[dict], commit_every: int) -> float:
        conn = self.conn
        start = time.perf_counter()
        for first in range(0, len(events), commit_every):
            with conn.transaction():
                for data in events[first:first + commit_every]:
                    event_id = conn.execute(
                        "INSERT INTO events (trigger, data, at, status) VALUES (%s, %s, %s, 'processing') RETURNING id",
                        ("job.created", json.dumps(data), "2026-11-22T10:00:00Z")).fetchone()[0]
                    conn.execute("INSERT INTO runs (rule, version, event_id, status, frame, deadline, started_at) "
                                 "VALUES ('Job', 1, %s, 'waiting', %s, %s, %s)",
                                 (event_id, self.frame, 0.0, "2026-11-22T10:00:00Z"))
                    conn.execute("UPDATE events SET status = 'processed' WHERE id = %s", (event_id,))
        return time.perf_counter() - start

    def close(self) -> None:
        self.conn.close()


# ---------------------------------------------------------------------------------------- workers


def _cpu(pids: list[int]) -> float:
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone, or not on this machine
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


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

    def cpu_seconds(self) -> tuple[float, float]:
        """User + system CPU used so far by the worker processes and by the server processes
        serving them (read from Linux's /proc, so the server's only when it runs on this machine;
        0 when unknown)."""
        server_pids: list[int] = []
        if self.url.startswith(("postgresql://", "postgres://")):
            with psycopg.connect(self.url, autocommit=True) as conn:
                server_pids = [pid for (pid,) in conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                    "AND application_name LIKE 'whenthen%' AND pid <> pg_backend_pid()")]
        return (_cpu([p.pid for p in self.procs]), _cpu(server_pids))

    def stop(self) -> None:
        for proc in self.procs:
            proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.engine.close()


def drain_rate(server: Server, tmp: Path, workers: int, jobs: int, action_seconds: float
               ) -> tuple[float, float, float]:
    """Runs per second for `workers` processes draining `jobs` queued events (from their commit to
    the last action call), and the CPU milliseconds per run meanwhile: the workers', the server's."""
    name = f"w{workers}_{int(action_seconds * 1000)}ms"
    folder = tmp / name
    folder.mkdir()
    pool = Workers(server.database(name), folder, action_seconds)
    try:
        pool.start(workers)
        before = len(pool.calls())
        cpu = pool.cpu_seconds()
        committed = pool.queue([f"t{i}" for i in range(jobs)])
        calls = pool.wait_calls(before + jobs, timeout=600)
        worker_cpu, server_cpu = (b - a for a, b in zip(cpu, pool.cpu_seconds(), strict=True))
        last = max(at for _, at in calls[before:])
    finally:
        pool.stop()
    done = {task for task, _ in calls[before:]}
    assert len(done) == jobs, f"{jobs - len(done)} task(s) missing, {len(calls) - before - len(done)} repeated"
    return jobs / (last - committed), worker_cpu / jobs * 1000, server_cpu / jobs * 1000


def bench_workers(server: Server, tmp: Path, jobs: int) -> None:
    for action_seconds in (0.005, 0.0):
        one, one_cpu, one_server = drain_rate(server, tmp, 1, jobs, action_seconds)
        four, four_cpu, four_server = drain_rate(server, tmp, 4, jobs, action_seconds)
        label = f"{action_seconds * 1000:.0f} ms actions" if action_seconds else "instant actions"
        print(f"workers, {label:16} 1: {one:,.0f} runs/s   4: {four:,.0f} runs/s   = {four / one:.2f}x "
              f"({jobs:,} queued events, each starting a run that calls one host action)")
        print(f"  CPU per run, workers + server: {one_cpu:.1f} + {one_server:.1f} ms with 1 worker, "
              f"{four_cpu:.1f} + {four_server:.1f} ms with 4")


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
    print(f"python {sys.version.split()[0]}, psycopg {psycopg.__version__}, {backend}, {os.cpu_count()} cores "
          f"({machine_busy()} before the run)")
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
