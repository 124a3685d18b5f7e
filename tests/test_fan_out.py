"""The fan-out budget: one external event causes a bounded amount of work, the runs past it fail
with `fan-out budget exceeded` and `run.failed`, and a storm never blocks another writer for long."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from whenthen.api import compile as compile_rules
from whenthen.runtime.engine import Engine
from whenthen.stdlib.config import StdlibConfig

STORM = """
trigger storm.ping { n: int }
trigger other.thing { id: str }

rule "Storm"
when storm.ping
then
  emit storm.ping(n: n + 1)
  emit storm.ping(n: n + 1)
end

rule "Other" when other.thing then log(message: "other {id}")
"""

ALERT = """
rule "Alert" when run.failed then log(message: "failed: {error}")
"""


def engine_with(tmp_path: Path, source: str, **limits: int) -> Engine:
    engine = Engine(tmp_path / "wt.db", config=StdlibConfig(**limits))
    engine.publish(compile_rules(source, engine.schema), enable=True)
    return engine


def test_a_self_feeding_rule_stops_at_the_budget(tmp_path):
    engine = engine_with(tmp_path, STORM, fan_out_runs=100, fan_out_events=60)
    engine.emit("storm.ping", {"n": 0})  # today: 2^32 runs; it returns
    runs = engine.runs(rule="Storm")
    failed = [r for r in runs if r["status"] == "failed"]
    assert 60 <= len(runs) <= 100 + 1
    assert failed and all("fan-out budget exceeded: one external event may cause at most 60 events emitted"
                          in r["error"] for r in failed)
    emitted = [e for e in engine.events() if e["trigger"] == "storm.ping"]
    assert len(emitted) == 1 + 60  # the external event and the emits the budget allowed
    failures = [e for e in engine.events() if e["trigger"] == "run.failed"]
    assert len(failures) == len(failed)  # each run past the budget fired run.failed
    # the next external event has a budget of its own
    engine.emit("other.thing", {"id": "o1"})
    assert engine.runs(rule="Other")[0]["status"] == "completed"


def test_runs_past_the_run_budget_fail_and_alerts_on_them_stay_bounded(tmp_path):
    engine = engine_with(tmp_path, STORM + ALERT, fan_out_runs=40, fan_out_events=1000)
    engine.emit("storm.ping", {"n": 0})
    runs = engine.runs()
    assert len(runs) < 200  # bounded: refused runs on run.failed fire nothing more
    refused = [r for r in runs if r["status"] == "failed" and "at most 40 runs started" in (r["error"] or "")]
    assert refused
    assert sum(r["status"] != "failed" or "fan-out" not in (r["error"] or "") for r in runs) <= 40


def test_the_default_budget_comes_from_whenthen_toml(tmp_path):
    (tmp_path / "whenthen.toml").write_text("[limits]\nfan_out_runs = 7\nfan_out_events = 5\n")
    config = StdlibConfig.load(db=tmp_path / "wt.db", env={})
    assert (config.fan_out_runs, config.fan_out_events) == (7, 5)
    assert (StdlibConfig.load(db=tmp_path / "elsewhere" / "x.db", env={}).fan_out_runs) == 1000
    env = {"WHENTHEN_FAN_OUT_EVENTS": "9"}
    assert StdlibConfig.load(db=tmp_path / "wt.db", env=env).fan_out_events == 9
    engine = Engine(tmp_path / "wt.db")
    engine.publish(compile_rules(STORM, engine.schema), enable=True)
    engine.emit("storm.ping", {"n": 0})
    assert len([e for e in engine.events() if e["trigger"] == "storm.ping"]) == 1 + 5


def test_another_process_emits_promptly_during_a_storm(tmp_path):
    """The storm commits in bounded chunks: another process's emit gets the write lock between
    them and completes while the storm is still running (it waited 41 s, then failed, before)."""
    (tmp_path / "s.rules").write_text(STORM)
    env = {k: v for k, v in os.environ.items() if k not in ("WHENTHEN_DB", "WHENTHEN_NOW")}
    wt = [sys.executable, "-m", "whenthen", "--db", str(tmp_path / "wt.db")]
    assert subprocess.run([*wt, "publish", "s.rules", "--enable"], cwd=tmp_path, env=env).returncode == 0
    storm_env = {**env, "WHENTHEN_FAN_OUT_RUNS": "20000", "WHENTHEN_FAN_OUT_EVENTS": "20000"}
    storm = subprocess.Popen([*wt, "emit", "storm.ping", '{"n": 0}'], cwd=tmp_path, env=storm_env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        time.sleep(1.0)  # the storm is under way
        assert storm.poll() is None
        other = subprocess.run([*wt, "emit", "other.thing", '{"id": "o1"}'], cwd=tmp_path, env=env,
                               capture_output=True, text=True, timeout=60)
        still_running = storm.poll() is None
        assert other.returncode == 0, other.stderr
        assert still_running, "the storm ended before the other emit got in: give it a larger budget"
    finally:
        storm.wait(timeout=300)
    engine = Engine(tmp_path / "wt.db")
    assert engine.runs(rule="Other")[0]["status"] == "completed"
    assert any("fan-out budget exceeded" in (r["error"] or "") for r in engine.runs(rule="Storm", status="failed"))
