"""A load of waits, wait-fors and emits run by real worker processes that are SIGKILLed and restarted.

Used by the PostgreSQL reliability tests; works on any `--db` (a SQLite path or a postgresql:// URL).
The host action `work` appends `[job, step, idempotency key, pid, time]` to a log file before it
returns, so the log is what the outside world saw, repeats included.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from whenthen.api import compile as compile_rules
from whenthen.runtime.engine import Engine, load_actions_module

ACTIONS = """
import json, os, time


def work(id: str, step: int, idempotency_key: str) -> dict:
    # O_APPEND writes of one short line are atomic, so concurrent workers never interleave lines
    with open(os.environ["WT_LOG"], "a") as log:
        log.write(json.dumps([id, step, idempotency_key, os.getpid(), time.time()]) + "\\n")
    # the effect happened; a SIGKILL now, before the journal records it, makes it run again
    time.sleep(float(os.environ.get("WT_ACTION_SECONDS", "0")))
    return {"ok": True}
"""

# Each job: a Job run acts, emits job.asked and waits for its answer; the Answer run (started by
# job.asked) acts, waits 1s and emits job.answered; the Job run resumes, waits 1s, acts and emits
# job.done, which starts a Done run that acts. Step 99 is the timeout branch: it must never run.
RULES = """
trigger job.created { id: str }
trigger job.asked { id: str }
trigger job.answered { id: str, answer: str }
trigger job.done { id: str }

rule "Job" when job.created then
  work(id: id, step: 1)
  emit job.asked(id: id)
  let r = wait for job.answered where id = job.id within 600s
  if r is null then work(id: id, step: 99) end
  wait 1s
  work(id: id, step: 2)
  emit job.done(id: id)
end

rule "Answer" when job.asked then
  work(id: id, step: 3)
  wait 1s
  emit job.answered(id: id, answer: "yes")
end

rule "Done" when job.done then work(id: id, step: 4)
"""

STEPS = (1, 2, 3, 4)  # the action steps every job takes once
RULE_NAMES = ("Job", "Answer", "Done")


@dataclass
class Load:
    """The database, the worker processes and what they logged."""

    db: str
    folder: Path
    lease: float = 1.0
    action_seconds: float = 0.02
    workers: list[subprocess.Popen] = field(default_factory=list)
    jobs: int = 0
    kills: int = 0
    _offset: int = 0
    _busy: set[int] = field(default_factory=set)
    _finished: set[str] = field(default_factory=set)

    @property
    def log_path(self) -> Path:
        return self.folder / "actions.log"

    def publish(self) -> None:
        (self.folder / "actions.py").write_text(ACTIONS)
        engine = self.engine()
        try:
            engine.publish(compile_rules(RULES, engine.schema), enable=True)
        finally:
            engine.close()

    def engine(self) -> Engine:
        engine = Engine(self.db)
        for fn in load_actions_module(str(self.folder / "actions.py")):
            engine.action(fn)
        return engine

    def enqueue(self, count: int, engine: Engine | None = None) -> None:
        """Record `count` new job.created events for the workers to dispatch."""
        own = engine is None
        engine = engine or self.engine()
        try:
            for _ in range(count):
                engine.emit("job.created", {"id": f"j{self.jobs}"}, dispatch=False)
                self.jobs += 1
        finally:
            if own:
                engine.close()

    def start_worker(self) -> subprocess.Popen:
        env = dict(os.environ, WT_LOG=str(self.log_path), WT_ACTION_SECONDS=str(self.action_seconds))
        env.pop("WHENTHEN_NOW", None)
        env.pop("WHENTHEN_DB", None)
        err = open(self.folder / "workers.err", "ab")  # noqa: SIM115 - the child keeps it
        proc = subprocess.Popen(
            [sys.executable, "-m", "whenthen", "--db", self.db, "worker", "--actions",
             str(self.folder / "actions.py"), "--idle", "0.05", "--lease", str(self.lease)],
            env=env, stdout=subprocess.DEVNULL, stderr=err)
        err.close()
        return proc

    def start(self, count: int) -> None:
        self.workers = [self.start_worker() for _ in range(count)]

    def poll_log(self) -> None:
        """Read the new complete lines of the action log: who is busy, which jobs are finished."""
        if not self.log_path.exists():
            return
        with open(self.log_path) as log:
            log.seek(self._offset)
            chunk = log.read()
        complete = chunk[: chunk.rfind("\n") + 1]
        self._offset += len(complete)
        for line in complete.splitlines():
            job, step, _key, pid, _at = json.loads(line)
            self._busy.add(pid)
            if step == 4:
                self._finished.add(job)

    def in_flight(self) -> int:
        self.poll_log()
        return self.jobs - len(self._finished)

    def kill_one_busy(self, rng: random.Random, timeout: float = 30) -> None:
        """SIGKILL a worker that has done real work (not one still starting), at a random moment,
        and start a new one in its place."""
        give_up = time.time() + timeout
        while True:
            self.poll_log()
            busy = [i for i, w in enumerate(self.workers) if w.pid in self._busy and w.poll() is None]
            if busy:
                break
            assert time.time() < give_up, f"no worker did any work for {timeout}s\n{self.errors()}"
            time.sleep(0.01)
        victim = rng.choice(busy)
        time.sleep(rng.uniform(0.0, 0.08))
        self.workers[victim].send_signal(signal.SIGKILL)
        self.workers[victim].wait(timeout=10)
        self.kills += 1
        self.workers[victim] = self.start_worker()

    def wait_finished(self, timeout: float) -> None:
        deadline = time.time() + timeout
        while self.in_flight() > 0:
            dead = [w.returncode for w in self.workers if w.poll() is not None]
            assert not dead, f"a worker exited by itself ({dead}):\n{self.errors()}"
            assert time.time() < deadline, f"{self.in_flight()} job(s) unfinished after {timeout}s\n{self.errors()}"
            time.sleep(0.1)

    def stop(self) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)

    def errors(self) -> str:
        path = self.folder / "workers.err"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def calls(self) -> list[tuple[str, int, str]]:
        """(job, step, idempotency key) of every action call, in order."""
        return [tuple(json.loads(line)[:3]) for line in self.log_path.read_text().splitlines()]


@dataclass
class Verdict:
    runs: int
    calls: int
    repeats: int


def verify(load: Load, check: Callable[[bool, str], None] | None = None) -> Verdict:
    """Check, through the engine's public API, that nothing was lost or done twice; returns the figures."""

    def ensure(ok: bool, what: str) -> None:
        if not ok:
            raise AssertionError(what)

    check = check or ensure
    jobs = load.jobs
    engine = load.engine()
    try:
        runs = engine.runs()
        statuses = Counter(r["status"] for r in runs)
        check(statuses == {"completed": 3 * jobs}, f"run statuses {dict(statuses)}, expected {3 * jobs} completed")
        per_rule = Counter(r["rule"] for r in runs)
        check(per_rule == {name: jobs for name in RULE_NAMES}, f"runs per rule {dict(per_rule)}")
        events = Counter(e["trigger"] for e in engine.events())
        check(events == {t: jobs for t in ("job.created", "job.asked", "job.answered", "job.done")},
              f"events per trigger {dict(events)}: each emit committed once")
        expected_trace = {"Job": {"emit": 2, "wait": 2}, "Answer": {"emit": 1, "wait": 1}, "Done": {}}
        for run in runs:
            steps = engine.run(run["id"])["steps"]
            actions = [s for s in steps if s["kind"] == "action"]
            done = Counter(s["args"]["step"] for s in actions if s["status"] == "done")
            check(all(n == 1 for n in done.values()) and len(done) == (2 if run["rule"] == "Job" else 1),
                  f"run {run['id']} ({run['rule']}): action steps done {dict(done)}")
            check(not [s for s in actions if s["status"] != "done"], f"run {run['id']}: an action left unfinished")
            trace = Counter(s["kind"] for s in steps if s["kind"] in ("emit", "wait"))
            check(trace == expected_trace[run["rule"]], f"run {run['id']} ({run['rule']}): trace steps {dict(trace)}")
    finally:
        engine.close()
    calls = load.calls()
    keys: dict[tuple[str, int], set[str]] = defaultdict(set)
    for job, step, key in calls:
        keys[(job, step)].add(key)
    expected = {(f"j{i}", s) for i in range(jobs) for s in STEPS}
    check(set(keys) == expected, f"action calls: {len(set(keys) - expected)} unexpected, "
          f"{len(expected - set(keys))} missing (step 99 is the timeout branch)")
    check(all(len(k) == 1 for k in keys.values()),
          f"repeated effects under different keys: {[(k, v) for k, v in keys.items() if len(v) > 1][:5]}")
    return Verdict(runs=3 * jobs, calls=len(calls), repeats=len(calls) - len(expected))
