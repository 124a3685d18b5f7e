"""The newcomer's CLI polish (#16): --actions before the command, several rules to enable/pause,
`emit` naming the runs it started, `runs --limit`, a worker's start-up line, one time format in
tables, a run waiting for a retry, colour only on a terminal without NO_COLOR."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from whenthen import cli
from whenthen.cli import main

RULES = """
trigger guest.added { id: str, email: str }

rule "Welcome"
when guest.added
then
  send_email(to: email, subject: "hello")
  wait 1d
  tag(id: id)
end

rule "Second"
when guest.added
then
  log(message: "second")
end
"""

ACTIONS = """
def tag(id: str) -> dict:
    return {"tagged": id}
"""


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WHENTHEN_DB", raising=False)
    monkeypatch.delenv("WHENTHEN_NOW", raising=False)
    (tmp_path / "rules.rules").write_text(RULES)
    (tmp_path / "actions.py").write_text(ACTIONS)
    return tmp_path


def run(*args: str, code: int = 0) -> tuple[str, str]:
    result = CliRunner().invoke(main, ["--db", "wt.db", *args], catch_exceptions=False)
    assert result.exit_code == code, (result.stdout, result.stderr)
    return result.stdout, result.stderr


def test_actions_before_the_command_and_several_rules_at_once(folder):
    out, _ = run("--actions", "actions.py", "publish", "rules.rules")
    assert "Welcome: new version 1, paused" in out
    out, _ = run("enable", "Welcome", "Second")
    assert out.splitlines() == ["Welcome: active", "Second: active"]
    _, err = run("pause", "Welcome", "Nope", code=1)
    assert "unknown rule 'Nope'" in err
    assert "paused" not in run("rules")[0]  # a misspelt name changes nothing
    out, _ = run("pause", "Welcome", "Second")
    assert out.splitlines() == ["Welcome: paused", "Second: paused"]


def test_emit_names_the_runs_and_warns_when_every_rule_is_paused(folder):
    run("publish", "rules.rules", "--actions", "actions.py")
    out, err = run("--actions", "actions.py", "emit", "guest.added", '{"id": "g1", "email": "a@x.io"}')
    assert out.splitlines() == ["event 1", "  no run started"]
    assert "warning: every rule on guest.added is paused (Second, Welcome)" in err
    run("enable", "Welcome", "Second")
    out, err = run("--actions", "actions.py", "emit", "guest.added", '{"id": "g2", "email": "b@x.io"}')
    assert out.splitlines()[0] == "event 2"
    assert sorted(out.splitlines()[1:]) == ["  run 1 · Second v1 · completed", "  run 2 · Welcome v1 · waiting"]
    assert "warning" not in err
    out, _ = run("emit", "guest.added", '{"id": "g3", "email": "c@x.io"}', "--format", "json",
                 "--actions", "actions.py")
    assert json.loads(out) == {"event": 3, "runs": [3, 4]}


def test_runs_limit_keeps_the_newest_and_times_have_one_format(folder):
    run("publish", "rules.rules", "--enable", "--actions", "actions.py")
    for i in range(3):
        run("--actions", "actions.py", "emit", "guest.added", json.dumps({"id": f"g{i}", "email": "a@x.io"}))
    out, err = run("runs", "--limit", "2")
    lines = out.splitlines()
    assert [line.split()[0] for line in lines] == ["ID", "5", "6"]
    assert "newest 2 runs" in err
    assert len(run("runs", "--limit", "0")[0].splitlines()) == 7
    assert [r["id"] for r in json.loads(run("runs", "--limit", "3", "--format", "json")[0])] == [4, 5, 6]
    stamps = re.findall(r"\d{4}-\d\d-\d\dT[\d:.]+Z", out + run("run", "1")[0] + run("outbox")[0])
    assert stamps and all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", s) for s in stamps), stamps
    run("runs", "--rule", "Nope", code=1)


def test_worker_prints_a_start_up_line(folder):
    run("publish", "rules.rules", "--enable", "--actions", "actions.py")
    # --once prints its summary only; the start-up line is for the long-running worker
    _, err = run("worker", "--once", "--actions", "actions.py")
    assert "processed" in err
    line = cli._shown_db("postgresql://u:secret@h/db")
    assert "secret" not in line


def test_a_run_waiting_for_a_retry_says_so(folder):
    (folder / "actions.py").write_text("def tag(id: str) -> dict:\n    raise RuntimeError('CRM down')\n")
    run("publish", "rules.rules", "--enable", "--actions", "actions.py")
    run("--now", "2026-11-01T00:00:00Z", "--actions", "actions.py", "emit", "guest.added",
        '{"id": "g1", "email": "a@x.io"}')
    run("--now", "2026-11-03T00:00:00Z", "--actions", "actions.py", "worker", "--once")
    welcome = next(r["id"] for r in json.loads(run("runs", "--format", "json")[0]) if r["rule"] == "Welcome")
    out, _ = run("run", str(welcome))
    assert "error: CRM down (attempt 1)" in out
    assert re.search(r"waiting for retry 2/3 at 2026-11-03T00:00:\d\dZ", out), out


def test_colour_only_on_a_terminal_without_no_color(monkeypatch):
    class Tty:
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(cli.sys, "stdout", Tty())
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert cli._paint("failed", "failed") != "failed"
    assert "\x1b[" in cli._paint("active", "active")
    monkeypatch.setenv("NO_COLOR", "1")
    assert cli._paint("failed", "failed") == "failed"
    monkeypatch.setattr(cli.sys, "stdout", Path("x"))  # no isatty: not a terminal
    monkeypatch.delenv("NO_COLOR")
    assert cli._paint("failed", "failed") == "failed"
