"""Retiring rules (SPEC 3): `archive RULE…` and `publish … --prune`, from Python and the CLI, on both backends."""

from __future__ import annotations

import json
import subprocess
import sys

from _serve import cli_env
from whenthen.api import compile as compile_rules
from whenthen.runtime.engine import Engine

TRIGGERS = "trigger order.placed { id: str }\ntrigger order.paid { id: str }\n"
OLD = TRIGGERS + """
rule "Chase payment" when order.placed then
  let paid = wait for order.paid where id = order.id within 1h
end

rule "Thank" when order.paid then wait 1s
"""
# "Chase payment" renamed: without --prune the old name would keep firing beside the new one
NEW = TRIGGERS + """
rule "Chase unpaid order" when order.placed then
  let paid = wait for order.paid where id = order.id within 1h
end

rule "Thank" when order.paid then wait 1s
"""


def runs_of(engine: Engine, rule: str) -> list[dict]:
    return engine.runs_page(rule, None, None, 100)


def states(engine: Engine) -> dict[str, str]:
    return {r["name"]: r["state"] for r in engine.rules()}


def test_archive_stops_new_runs_and_lets_the_ones_in_flight_finish(db):
    engine = Engine(db)
    engine.publish(compile_rules(OLD, engine.schema), enable=True)
    engine.emit("order.placed", {"id": "o1"})
    assert [r["status"] for r in runs_of(engine, "Chase payment")] == ["waiting"]
    engine.archive("Chase payment")
    assert states(engine)["Chase payment"] == "archived"
    engine.emit("order.placed", {"id": "o2"})  # no new run
    assert len(runs_of(engine, "Chase payment")) == 1
    engine.emit("order.paid", {"id": "o1"})  # the run in flight still gets its answer
    assert [r["status"] for r in runs_of(engine, "Chase payment")] == ["completed"]
    assert [v["version"] for v in engine.versions("Chase payment")] == [1]  # its history stays
    engine.enable("Chase payment")  # and it can come back
    engine.emit("order.placed", {"id": "o3"})
    assert len(runs_of(engine, "Chase payment")) == 2
    engine.close()


def test_publish_prune_archives_the_rules_the_program_no_longer_has(db):
    engine = Engine(db)
    engine.publish(compile_rules(OLD, engine.schema), enable=True)
    kept = engine.publish(compile_rules(NEW, engine.schema), enable=True)  # no prune: both fire
    assert "Chase payment" not in [p.rule for p in kept]
    assert states(engine)["Chase payment"] == "active"
    report = engine.publish(compile_rules(NEW, engine.schema), enable=True, prune=True)
    assert [(p.rule, p.state, p.new_version) for p in report if p.rule == "Chase payment"] == [
        ("Chase payment", "archived", False)]
    assert states(engine) == {"Chase payment": "archived", "Chase unpaid order": "active", "Thank": "active"}
    engine.emit("order.placed", {"id": "o1"})
    assert runs_of(engine, "Chase payment") == [] and len(runs_of(engine, "Chase unpaid order")) == 1
    again = engine.publish(compile_rules(NEW, engine.schema), prune=True)  # already archived: not reported
    assert "Chase payment" not in [p.rule for p in again]
    engine.close()


def wt(db: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "whenthen", "--db", db, *args], capture_output=True, text=True,
                          env=cli_env(), timeout=120)


def test_the_cli_archives_prunes_and_hides_archived_rules(db, tmp_path):
    (tmp_path / "old.rules").write_text(OLD)
    (tmp_path / "new.rules").write_text(NEW)
    assert wt(db, "publish", str(tmp_path / "old.rules"), "--enable").returncode == 0
    pruned = wt(db, "publish", str(tmp_path / "new.rules"), "--enable", "--prune")
    assert pruned.returncode == 0, pruned.stderr
    assert "Chase payment: archived (not in the published files)" in pruned.stdout
    listed = wt(db, "rules")
    assert "Chase payment" not in listed.stdout and "1 archived rule not shown" in listed.stderr
    assert "Chase payment" in wt(db, "rules", "--all").stdout
    assert [r["name"] for r in json.loads(wt(db, "rules", "--format", "json").stdout)] == [
        "Chase unpaid order", "Thank"]
    archived = wt(db, "archive", "Thank", "Chase unpaid order")
    assert archived.returncode == 0 and "Thank: archived" in archived.stdout
    assert json.loads(wt(db, "rules", "--format", "json").stdout) == []
    assert {r["state"] for r in json.loads(wt(db, "rules", "--all", "--format", "json").stdout)} == {"archived"}
    unknown = wt(db, "archive", "Thnak")
    assert unknown.returncode != 0 and "did you mean 'Thank'" in unknown.stderr
