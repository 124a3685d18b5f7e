"""Several `whenthen worker` processes on one database: leases, fencing, takeover after SIGKILL."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

from whenthen.api import compile as compile_rules
from whenthen.runtime.engine import Engine, load_actions_module
from whenthen.runtime.store import inspect, open_store

ACTIONS = """
import json, os, time


def work(id: str, step: int, idempotency_key: str) -> dict:
    # O_APPEND writes of one short line are atomic, so concurrent workers never interleave lines
    with open(os.environ["WT_LOG"], "a") as log:
        log.write(json.dumps([id, step, idempotency_key, os.getpid()]) + "\\n")
    # the effect happened; a SIGKILL now, before the journal records it, makes it run again
    time.sleep(float(os.environ.get("WT_ACTION_SECONDS", "0")))
    return {"ok": True}
"""

CHAIN = """
trigger job.created { id: str }
trigger job.done { id: str }

rule "Job"
when job.created
then
  work(id: id, step: 1)
  wait 1s
  work(id: id, step: 2)
  emit job.done(id: id)
end

rule "Done" when job.done then work(id: id, step: 3)
"""

SIMPLE = """
trigger job.created { id: str }
rule "Job" when job.created then work(id: id, step: 1); wait 1s; work(id: id, step: 2)
"""


def setup_db(tmp_path: Path, db: str, rules: str, jobs: int) -> str:
    """Publish `rules` into `db` and enqueue `jobs` events for the workers (nothing is dispatched here)."""
    (tmp_path / "actions.py").write_text(ACTIONS)
    engine = Engine(db)
    for fn in load_actions_module(str(tmp_path / "actions.py")):
        engine.action(fn)
    engine.publish(compile_rules(rules, engine.schema), enable=True)
    for i in range(jobs):
        engine.emit("job.created", {"id": f"j{i}"}, dispatch=False)
    engine.close()
    return db


def start_worker(tmp_path: Path, db: str, lease: float, action_seconds: float = 0.0) -> subprocess.Popen:
    env = dict(os.environ, WT_LOG=str(tmp_path / "actions.log"), WT_ACTION_SECONDS=str(action_seconds))
    env.pop("WHENTHEN_NOW", None)
    return subprocess.Popen(
        [sys.executable, "-m", "whenthen", "--db", db, "worker", "--actions",
         str(tmp_path / "actions.py"), "--idle", "0.05", "--lease", str(lease)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def table(db: str, name: str, *columns: str) -> list[tuple]:
    """Columns of a table's rows, read as another process would."""
    store = open_store(db)
    try:
        return inspect.rows(store, name, *columns)
    finally:
        store.close()


def run_statuses(db: str) -> dict[str, int]:
    return dict(Counter(status for (status,) in table(db, "runs", "status")))


def wait_until_done(db: str, expected_completed: int, timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if run_statuses(db).get("completed", 0) >= expected_completed:
            return
        time.sleep(0.2)
    raise AssertionError(f"not done after {timeout}s: {run_statuses(db)}")


def stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)


def action_log(tmp_path: Path) -> list[tuple[str, int, str]]:
    """(job, step, idempotency key) of every action call, in order."""
    path = tmp_path / "actions.log"
    lines = path.read_text().splitlines() if path.exists() else []
    return [tuple(json.loads(line)[:3]) for line in lines]


class BusyWatch:
    """Follows the action log to tell which worker processes have started doing real work."""

    def __init__(self, tmp_path: Path):
        self.path = tmp_path / "actions.log"
        self.offset = 0
        self.busy: set[int] = set()

    def poll(self) -> set[int]:
        if self.path.exists():
            with open(self.path) as log:
                log.seek(self.offset)
                chunk = log.read()
            complete = chunk[: chunk.rfind("\n") + 1]
            self.offset += len(complete)
            self.busy.update(json.loads(line)[3] for line in complete.splitlines())
        return self.busy


def test_sigkill_at_random_moments_loses_nothing_and_never_advances_a_run_twice(tmp_path, db, backend):
    # fewer on PostgreSQL, where tests/test_pg_reliability.py kills 200 times more
    jobs, kills = (150, 50) if backend == "sqlite" else (80, 20)
    setup_db(tmp_path, db, CHAIN, jobs)
    rng = random.Random(7)
    workers = [start_worker(tmp_path, db, lease=1.0, action_seconds=0.03) for _ in range(3)]
    watch = BusyWatch(tmp_path)
    kills_under_load = 0
    try:
        for _ in range(kills):
            # kill a worker that is doing real work (not one still starting up), at a random moment
            give_up = time.time() + 10
            while not (busy := [i for i, w in enumerate(workers) if w.pid in watch.poll()]):
                assert time.time() < give_up, "no worker is doing any work"
                time.sleep(0.01)
            victim = rng.choice(busy)
            time.sleep(rng.uniform(0.0, 0.05))
            workers[victim].send_signal(signal.SIGKILL)
            workers[victim].wait(timeout=10)
            kills_under_load += run_statuses(db).get("completed", 0) < 2 * jobs
            workers[victim] = start_worker(tmp_path, db, lease=1.0, action_seconds=0.03)
        wait_until_done(db, 2 * jobs, timeout=60)
    finally:
        stop(workers)
    assert kills_under_load >= kills - 5  # the kills landed while there was work in flight

    assert run_statuses(db) == {"completed": 2 * jobs}  # none lost, none failed
    runs = dict(table(db, "runs", "id", "rule"))
    assert Counter(runs.values()) == {"Job": jobs, "Done": jobs}
    # each emit committed once with its run's snapshot: one job.done per job
    assert sum(t == "job.done" for (t,) in table(db, "events", "trigger")) == jobs
    steps = table(db, "steps", "run_id", "step", "kind", "status")
    # the journal: every action step of every run is done exactly once
    done = Counter((run, step) for run, step, kind, status in steps if kind == "action" and status == "done")
    assert len(done) == 3 * jobs and set(done.values()) == {1}
    assert not [s for s in steps if s[2] == "action" and s[3] == "started"]
    # no run took a step twice: one wait step per Job run, one emit step per Job run
    for kind in ("wait", "emit"):
        counts = Counter(run for run, _, k, _ in steps if k == kind and runs[run] == "Job")
        assert len(counts) == jobs and set(counts.values()) == {1}, kind
    # the outside world saw every action at least once, always under one stable idempotency key
    keys: dict[tuple[str, int], set[str]] = defaultdict(set)
    for job, step, key in action_log(tmp_path):
        keys[(job, step)].add(key)
    assert len(keys) == 3 * jobs
    assert all(len(k) == 1 for k in keys.values())
    repeats = len(action_log(tmp_path)) - 3 * jobs
    assert repeats > 0  # some kills landed between an action's effect and its journal entry
    print(f"{kills} kills ({kills_under_load} under load); {repeats} action(s) re-run after a crash, same key")


def test_four_workers_share_one_database_and_take_each_step_once(tmp_path, db, backend):
    jobs = 1000 if backend == "sqlite" else 300
    setup_db(tmp_path, db, SIMPLE, jobs)
    started = time.time()
    workers = [start_worker(tmp_path, db, lease=30.0) for _ in range(4)]
    try:
        wait_until_done(db, jobs, timeout=150)
    finally:
        stop(workers)
    elapsed = time.time() - started
    log = action_log(tmp_path)
    assert len(log) == 2 * jobs  # no crash: every step exactly once in the outside world too
    assert {(job, step) for job, step, _ in log} == {(f"j{i}", s) for i in range(jobs) for s in (1, 2)}
    assert {status for (status,) in table(db, "events", "status")} == {"processed"}
    print(f"4 workers, {jobs} runs with 2 actions and a wait each: {elapsed:.1f}s")
