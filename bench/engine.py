"""Benchmark: the durable engine on a SQLite file.

Run: python bench/engine.py [--events 5000] [--waiting 100000]

Reports, measured in one run on one machine:
- events/s through `Engine.emit` and `Engine.ingest` (each event validated, recorded, filtered,
  and starting a run that suspends at a `wait`), against the baseline of raw sqlite3 inserting
  the same rows (event, run with its frame blob, event marked processed) with one commit per
  event, as `emit` does (and one per 100 events, as `ingest` does); and against the floor:
  raw sqlite3 writing exactly the rows emit writes, in the engine's schema;
- runs resumed per second when their wait is due (each then calls `log`, journaled, and ends);
- events/s with `--rules` rules on one trigger, each requiring its own `owner = '…'` (the engine
  evaluates only the filters an event can satisfy), against one rule;
- with `--waiting` runs suspended on `wait for reply.received where thread = message.thread
  within 1h`: the time to match one reply among them (an index lookup, not a scan), and the
  rate at which all of them are resumed when their timeout comes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from whenthen.api import compile as compile_rules  # noqa: E402
from whenthen.runtime.clock import SimulatedClock  # noqa: E402
from whenthen.runtime.engine import Engine  # noqa: E402
from whenthen.runtime.store import inspect  # noqa: E402

T0 = dt.datetime(2026, 11, 22, 10, tzinfo=dt.UTC)

JOBS = """
trigger job.created { id: str, size: int, owner: str }
rule "Job" when job.created where size > 0 then
  wait 1h
  log(message: "done {id}")
end
"""

REPLIES = """
trigger message.sent { thread: str, client: str }
trigger reply.received { thread: str, text: str }
rule "Reply" when message.sent then
  let r = wait for reply.received where thread = message.thread within 1h
  if r is null then log(message: "no reply on {thread}") end
end
"""


def engine_on(path: Path, rules: str) -> tuple[Engine, SimulatedClock]:
    clock = SimulatedClock(T0)
    engine = Engine(path, clock)
    engine.publish(compile_rules(rules, engine.schema), enable=True)
    return engine, clock


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:,.0f}/s ({count:,} in {seconds:.2f} s)"


def bench_emit(tmp: Path, n: int) -> None:
    engine, clock = engine_on(tmp / "emit.db", JOBS)
    events = [{"id": f"j{i}", "size": 1 + i % 5, "owner": "bench"} for i in range(n)]
    start = time.perf_counter()
    for data in events:
        engine.emit("job.created", data)
    emit_s = time.perf_counter() - start
    assert len(engine.runs(status="waiting")) == n

    ingest_engine, _ = engine_on(tmp / "ingest.db", JOBS)
    lines = [json.dumps({"trigger": "job.created", "data": d}) for d in events]
    start = time.perf_counter()
    accepted, rejected = ingest_engine.ingest(lines)
    ingest_s = time.perf_counter() - start
    assert accepted == n and not rejected

    frame = inspect.first_blob(engine.store, "runs", "frame")
    raw_s = raw_sqlite(tmp / "raw.db", events, frame)
    raw_batched_s = raw_sqlite(tmp / "raw_batched.db", events, frame, commit_every=100)
    floor_s = engine_rows_sqlite(tmp / "floor.db", events, frame)

    clock.advance(dt.timedelta(hours=1))
    start = time.perf_counter()
    resumed = engine.run_due()
    resume_s = time.perf_counter() - start
    assert resumed == n and len(engine.runs(status="completed")) == n

    print(f"emit            {rate(n, emit_s)}  = {raw_s / emit_s:.0%} of raw sqlite3")
    print(f"ingest          {rate(n, ingest_s)}  = {raw_batched_s / ingest_s:.0%} of raw sqlite3 batched "
          "(commit every 100 lines)")
    print(f"raw sqlite3     {rate(n, raw_s)}  (same rows, one commit per event)")
    print(f"raw batched     {rate(n, raw_batched_s)}  (same rows, one commit per 100 events)")
    print(f"engine's rows   {rate(n, floor_s)}  (raw sqlite3 writing exactly the rows and indexes emit writes: "
          f"emit is at {floor_s / emit_s:.0%} of it)")
    print(f"  emit costs {emit_s / raw_s:.1f}x the raw inserts")
    print(f"resume (wait)   {rate(n, resume_s)}  (each run: claim, resume, journaled log action, commit)")


def raw_sqlite(path: Path, events: list[dict], frame: bytes, commit_every: int = 1) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, trigger TEXT, data TEXT, at TEXT, status TEXT)")
    conn.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY, rule TEXT, version INT, event_id INT, status TEXT, "
                 "frame BLOB, deadline REAL, started_at TEXT)")
    conn.execute("CREATE INDEX runs_due ON runs (deadline, id) WHERE status = 'waiting'")
    start = time.perf_counter()
    for i, data in enumerate(events):
        if i % commit_every == 0:
            conn.execute("BEGIN IMMEDIATE")
        cur = conn.execute("INSERT INTO events (trigger, data, at, status) VALUES (?, ?, ?, 'processing')",
                           ("job.created", json.dumps(data), "2026-11-22T10:00:00Z"))
        conn.execute("INSERT INTO runs (rule, version, event_id, status, frame, deadline, started_at) "
                     "VALUES ('Job', 1, ?, 'waiting', ?, ?, ?)", (cur.lastrowid, frame, 0.0, "2026-11-22T10:00:00Z"))
        conn.execute("UPDATE events SET status = 'processed' WHERE id = ?", (cur.lastrowid,))
        if (i + 1) % commit_every == 0 or i + 1 == len(events):
            conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed


def engine_rows_sqlite(path: Path, events: list[dict], frame: bytes) -> float:
    """The floor for emit: raw sqlite3 writing the rows emit writes (event, run, its `wait` trace
    step, the event counted against the trigger's rules) in the engine's own schema, with its
    indexes, one commit per event; no validation, no VM, no encoding of the frame."""
    from whenthen.runtime.store.schema import _TABLES

    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.executescript(_TABLES)
    at = "2026-11-22T10:00:00Z"
    start = time.perf_counter()
    for i, data in enumerate(events):
        conn.execute("BEGIN IMMEDIATE")
        cur = conn.execute("INSERT INTO events (trigger, data, at, status, origin) VALUES (?, ?, ?, 'processed', "
                           "'external')", ("job.created", json.dumps(data), at))
        cur = conn.execute(
            "INSERT INTO runs (rule, version, event_id, status, frame, deadline, depth, started_at, updated_at, "
            "fence, activation) VALUES ('Job', 1, ?, 'waiting', ?, ?, 0, ?, ?, 1, 1)",
            (cur.lastrowid, frame, 1e9 + i, at, at))
        conn.execute("INSERT INTO steps (run_id, activation, ordinal, attempt, at, kind, data) "
                     "VALUES (?, 0, 0, 0, ?, 'wait', ?)", (cur.lastrowid, at, '{"line":3,"wait":"duration"}'))
        conn.execute("INSERT INTO trigger_seen (trigger, set_id, n) VALUES ('job.created', 's', 1) "
                     "ON CONFLICT (trigger, set_id) DO UPDATE SET n = n + 1")
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed


def bench_many_rules(tmp: Path, rules: int, n: int = 2000) -> None:
    source = "trigger job.created { id: str, owner: str }\n" + "".join(
        f"rule \"R{i}\" when job.created where owner = 'o{i}' then log(message: id)\n" for i in range(rules))
    tmp.mkdir(exist_ok=True)
    engine, _ = engine_on(tmp / "rules.db", source)
    start = time.perf_counter()
    engine.emit("job.created", {"id": "warm-up", "owner": "nobody"})  # loads and compiles every rule once
    load_s = time.perf_counter() - start
    start = time.perf_counter()
    for i in range(n):
        engine.emit("job.created", {"id": f"j{i}", "owner": f"o{i % rules}"})
    elapsed = time.perf_counter() - start
    assert len(engine.runs()) == n
    print(f"{rules:,} rule(s) on one trigger, 1 matching per event: {rate(n, elapsed)}; "
          f"loading them: {load_s:.2f} s")


def bench_waiting(tmp: Path, n: int, probes: int = 200) -> None:
    engine, clock = engine_on(tmp / "waiting.db", REPLIES)
    start = time.perf_counter()
    for i in range(n):
        engine.emit("message.sent", {"thread": f"t{i}", "client": "c"})
    setup_s = time.perf_counter() - start
    print(f"{n:,} runs suspended on a wait for: {rate(n, setup_s)}")

    timings = []
    step = max(1, n // probes)
    for i in range(0, n, step)[:probes]:
        start = time.perf_counter()
        engine.emit("reply.received", {"thread": f"t{i}", "text": "thanks"})
        timings.append(time.perf_counter() - start)
    matched = len(engine.runs(status="completed"))
    assert matched == len(timings), (matched, len(timings))
    print(f"match one reply among {n:,} waiting runs: median {statistics.median(timings) * 1000:.2f} ms, "
          f"p95 {sorted(timings)[int(len(timings) * 0.95) - 1] * 1000:.2f} ms ({len(timings)} replies, "
          "each found by index lookup and its run resumed to completion)")

    clock.advance(dt.timedelta(hours=1))
    waiting = n - matched
    start = time.perf_counter()
    resumed = engine.run_due()
    resume_s = time.perf_counter() - start
    assert resumed == waiting
    print(f"resume {waiting:,} timed-out waits: {rate(resumed, resume_s)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--waiting", type=int, default=100_000)
    parser.add_argument("--rules", type=int, default=10_000)
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, sqlite {sqlite3.sqlite_version}, {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        bench_emit(Path(tmp), args.events)
        for count in (1, args.rules):
            bench_many_rules(Path(tmp) / f"r{count}", count)
        if args.waiting:
            bench_waiting(Path(tmp), args.waiting)


if __name__ == "__main__":
    main()
