"""A load of waits, wait-fors and emits run by real worker processes that are SIGKILLed and restarted.

Used by the PostgreSQL reliability tests; works on any `--db` (a SQLite path or a postgresql:// URL).
The host action `work` appends `[job, step, idempotency key, pid, time]` to a log file before it
returns, so the log is what the outside world saw, repeats included.

Workers are `whenthen worker` command lines run in processes forked from a parent that imported
whenthen once (`Spawner`): a fresh `python -m whenthen` costs about 0.4 s of CPU here, which for
hundreds of restarts would be most of the test. Each child is a real process with its own
connections, killed with SIGKILL like any other.
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


# The fork server: reads `{"argv": [...], "env": {...}, "err": path}` lines, forks a child that runs
# the command line (stdout to /dev/null, stderr appended to `err`), and answers with its pid.
# SIGCHLD ignored: the kernel reaps the children, so a dead child's pid simply disappears.
SPAWNER = """
import json, os, signal, sys, traceback
import whenthen.cli, whenthen.runtime.engine  # noqa: F401 - imported once, before any fork
try:
    import psycopg, psycopg_pool  # noqa: F401
except ImportError:
    pass
signal.signal(signal.SIGCHLD, signal.SIG_IGN)
for line in sys.stdin:
    order = json.loads(line)
    pid = os.fork()
    if pid == 0:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        null = os.open(os.devnull, os.O_RDWR)
        err = os.open(order["err"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.dup2(null, 0); os.dup2(null, 1); os.dup2(err, 2)
        os.environ.clear(); os.environ.update(order["env"])
        code = 0
        try:
            whenthen.cli.main(order["argv"], prog_name="whenthen")
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:
            traceback.print_exc()
            code = 1
        sys.stderr.flush()
        os._exit(code)
    print(pid, flush=True)
"""


class Spawner:
    """Starts worker command lines in processes forked from one pre-imported parent."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", SPAWNER], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)

    def spawn(self, argv: list[str], env: dict[str, str], err: Path) -> int:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"argv": argv, "env": env, "err": str(err)}) + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        assert answer, "the fork server died"
        return int(answer)

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=10)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def kill(pid: int) -> None:
    """SIGKILL `pid` and wait until it is gone."""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    deadline = time.time() + 10
    while alive(pid):
        assert time.time() < deadline, f"process {pid} survived SIGKILL"
        time.sleep(0.002)


@dataclass
class Load:
    """The database, the worker processes and what they logged."""

    db: str
    folder: Path
    lease: float = 1.0
    action_seconds: float = 0.02
    workers: list[int] = field(default_factory=list)  # pids
    spawner: Spawner | None = None
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

    def start_worker(self) -> int:
        """A `whenthen worker` process; returns its pid."""
        env = dict(os.environ, WT_LOG=str(self.log_path), WT_ACTION_SECONDS=str(self.action_seconds))
        env.pop("WHENTHEN_NOW", None)
        env.pop("WHENTHEN_DB", None)
        if self.spawner is None:
            self.spawner = Spawner()
        argv = ["--db", self.db, "worker", "--actions", str(self.folder / "actions.py"), "--idle", "0.05",
                "--lease", str(self.lease)]
        return self.spawner.spawn(argv, env, self.folder / "workers.err")

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
            busy = [i for i, pid in enumerate(self.workers) if pid in self._busy]
            if busy:
                break
            assert time.time() < give_up, f"no worker did any work for {timeout}s\n{self.errors()}"
            time.sleep(0.01)
        victim = rng.choice(busy)
        time.sleep(rng.uniform(0.0, 0.08))
        assert alive(self.workers[victim]), f"a worker exited by itself:\n{self.errors()}"
        kill(self.workers[victim])
        self.kills += 1
        self.workers[victim] = self.start_worker()

    def wait_all_busy(self, timeout: float = 30) -> None:
        """Until every current worker has done real work (so it is past its start-up)."""
        deadline = time.time() + timeout
        while True:
            self.poll_log()
            if all(pid in self._busy for pid in self.workers):
                return
            assert all(alive(pid) for pid in self.workers), f"a worker exited by itself:\n{self.errors()}"
            assert time.time() < deadline, f"workers idle for {timeout}s\n{self.errors()}"
            time.sleep(0.01)

    def wait_finished(self, timeout: float) -> None:
        """Until every job's last action was called and every run is recorded as ended (a worker
        killed after the last effect leaves its run to be finished after the lease)."""
        deadline = time.time() + timeout
        engine = self.engine()
        try:
            while self.in_flight() > 0 or self._unfinished_runs(engine):
                assert all(alive(pid) for pid in self.workers), f"a worker exited by itself:\n{self.errors()}"
                assert time.time() < deadline, (f"{self.in_flight()} job(s) unfinished after {timeout}s\n"
                                                f"{self.errors()}")
                time.sleep(0.2)
        finally:
            engine.close()

    def _unfinished_runs(self, engine: Engine) -> bool:
        return any(engine.runs(status=status) for status in ("running", "waiting")) or \
            any(engine.events(status=status) for status in ("pending", "processing"))

    def stop(self) -> None:
        for pid in self.workers:
            kill(pid)
        if self.spawner is not None:
            self.spawner.close()
            self.spawner = None

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
