"""Entry limits (SPEC 2.11): `once per KEY[, KEY]… [within DURATION]`, on every stage."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import whenthen
from whenthen.api import compile as compile_rules
from whenthen.grammar.parser import parse
from whenthen.grammar.printer import print_file
from whenthen.runtime.clock import SimulatedClock
from whenthen.runtime.engine import Engine
from whenthen.runtime.simulate import simulate
from whenthen.source import Source
from whenthen.tools.fmt import format_source

T0 = dt.datetime(2026, 11, 1, 10, 0, tzinfo=dt.UTC)
SCHEMA = "trigger contact.created { email: str?, list: str, once: bool, per: int, on: str }\n"
WELCOME = SCHEMA + """
rule "Welcome"
when contact.created where per >= 0
once per email within 30d
then
  log(message: "welcome {email}")
end
"""


def data(email: str | None, list_: str = "news") -> dict:
    return {"email": email, "list": list_, "once": True, "per": 1, "on": "x"}


def make(db: str, source: str = WELCOME) -> tuple[Engine, SimulatedClock]:
    clock = SimulatedClock(T0)
    engine = Engine(db, clock)
    engine.publish(compile_rules(source, engine.schema), author="t", enable=True)
    return engine, clock


def started(engine: Engine) -> list[str]:
    return [engine.run(r["id"])["event"]["data"]["email"] for r in engine.runs()]


def test_syntax_keeps_once_and_per_as_field_names() -> None:
    source = SCHEMA + """
rule "a" when contact.created where once and per > 0 and on = 'x'
once per email, lower(list)
then log(message: "{once} {per} {on}")
rule "b" when contact.created once per email within 1d then stop
"""
    assert [d.code for d in whenthen.check(source)] == []
    file, _ = parse(Source("t.rules", source))
    again, diags = parse(Source("t.rules", print_file(file)))
    assert diags == [] and again == file
    formatted = format_source(source)
    assert "\nonce per email, lower(list)\nthen\n" in formatted and "once per email within 1d" in formatted
    assert format_source(formatted) == formatted


@pytest.mark.parametrize(("within", "message"), [("0s", "positive duration, got 0s"),
                                                  ("per", "duration literal")])
def test_e113_for_a_within_that_is_not_a_positive_duration_literal(within: str, message: str) -> None:
    diags = whenthen.check(SCHEMA + f'rule "x" when contact.created once per email within {within} then stop\n')
    assert [d.code for d in diags] == ["E113"] and message in diags[0].message


def test_a_key_enters_once_within_the_duration(db: str) -> None:
    engine, clock = make(db)
    engine.emit("contact.created", data("a@x"))
    clock.advance(dt.timedelta(days=4))
    engine.emit("contact.created", data("a@x"))  # limited by run 1
    engine.emit("contact.created", data("b@x"))
    engine.emit("contact.created", data(None))  # a null key never limits
    engine.emit("contact.created", data(None))
    clock.set(T0 + dt.timedelta(days=30))  # exactly 30 days after run 1: no longer within
    engine.emit("contact.created", data("a@x"))
    clock.advance(dt.timedelta(days=1))
    engine.emit("contact.created", data("a@x"))  # limited by the run of day 30
    assert started(engine) == ["a@x", "b@x", None, None, "a@x"]
    rule = engine.rules()[0]
    assert rule["limited"] == 2 and rule["filtered"] == 0 and rule["runs"] == 5
    engine.close()


def test_limits_count_across_versions_and_without_within_forever(db: str) -> None:
    source = WELCOME.replace(" within 30d", "")
    engine, clock = make(db, source)
    engine.emit("contact.created", data("a@x"))
    engine.publish(compile_rules(source.replace("welcome", "hello"), engine.schema), author="t", enable=True)
    clock.advance(dt.timedelta(days=3650))
    engine.emit("contact.created", data("a@x"))  # version 2: a run of version 1 still counts
    engine.emit("contact.created", data("c@x"))
    assert started(engine) == ["a@x", "c@x"]
    assert [r["version"] for r in engine.runs()] == [1, 2]
    assert engine.store.policy_counts()["Welcome"]["limited"] == 1
    rule = engine.rules()[0]
    assert rule["limited"] == 1 and rule["filtered"] == 0
    engine.close()


def test_filtered_events_are_not_limited(db: str) -> None:
    engine, _ = make(db)
    bad = dict(data("a@x"), per=-1)
    engine.emit("contact.created", bad)
    engine.emit("contact.created", data("a@x"))
    rule = engine.rules()[0]
    assert (rule["runs"], rule["filtered"], rule["limited"]) == (1, 1, 0)
    engine.close()


def test_the_check_is_a_primary_key_lookup(tmp_path: Path) -> None:
    db = str(tmp_path / "w.db")
    engine, _ = make(db)
    engine.emit("contact.created", data("a@x"))
    engine.close()
    conn = sqlite3.connect(db)
    plan = " ".join(str(r) for r in conn.execute(
        "EXPLAIN QUERY PLAN SELECT started, run_id FROM entries WHERE rule = ? AND key = ?", ("Welcome", "k")))
    assert "USING INDEX sqlite_autoindex_entries_1 (rule=? AND key=?)" in plan
    assert conn.execute("SELECT count(*) FROM entries").fetchone()[0] == 1  # one row per key, not per run


def test_simulate_summary_has_limited_only_for_rules_with_a_limit(tmp_path: Path) -> None:
    rules = tmp_path / "w.rules"
    rules.write_text(WELCOME + 'rule "Plain" when contact.created then log(message: "x")\n')
    events = tmp_path / "e.jsonl"
    events.write_text("".join(json.dumps({"trigger": "contact.created", "at": f"2026-11-0{i + 1}T10:00:00Z",
                                          "data": data("a@x")}) + "\n" for i in range(3)))
    result = simulate([rules], events)
    assert result.summary["Welcome"] == {"runs": 1, "filtered": 0, "completed": 1, "waiting": 0, "failed": 0,
                                         "exited": 0, "limited": 2}
    assert "limited" not in result.summary["Plain"]


def test_cli_rules_shows_limited(tmp_path: Path) -> None:
    rules = tmp_path / "w.rules"
    rules.write_text(WELCOME)
    db = str(tmp_path / "w.db")

    def cli(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "whenthen", "--db", db, *args], capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    cli("publish", str(rules), "--enable")
    for _ in range(3):
        cli("emit", "contact.created", json.dumps(data("a@x")))
    assert "Welcome: 2 limited" in cli("rules")
    assert json.loads(cli("rules", "--format", "json"))[0]["limited"] == 2
    assert "once per within 2592000s" in cli("disasm", str(rules))
