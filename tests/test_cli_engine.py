"""The engine commands of the `whenthen` CLI, run as real processes on a real database of each backend."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

RULES = """
trigger guest.added { id: str, email: str, age: int? }
trigger guest.left { id: str }

rule "Welcome"
when guest.added
exit when guest.left where id = guest.id
then
  send_email(to: email, subject: "hello")
  wait 1d
  tag(id: id)
end
"""

ACTIONS = """
def tag(id: str, idempotency_key: str) -> dict:
    return {"tagged": id, "key": idempotency_key}
"""


# a test folder's --db: a SQLite file in it, or the PostgreSQL database `published` made for it
_DBS: dict[Path, str] = {}


def wt(tmp_path: Path, *args: str, now: str | None = None, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("WHENTHEN_DB", "WHENTHEN_NOW")}
    argv = [sys.executable, "-m", "whenthen", "--db", _DBS.get(tmp_path, str(tmp_path / "wt.db"))]
    argv += ["--now", now] if now else []
    return subprocess.run(argv + list(args), capture_output=True, text=True, cwd=tmp_path, env=env,
                          input=stdin, timeout=60)


def js(tmp_path: Path, *args: str) -> object:
    proc = wt(tmp_path, *args, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture
def published(tmp_path, db):
    _DBS[tmp_path] = db
    (tmp_path / "rules.rules").write_text(RULES)
    (tmp_path / "actions.py").write_text(ACTIONS)
    proc = wt(tmp_path, "publish", "rules.rules", "--author", "ci", "--enable", "--actions", "actions.py")
    assert proc.returncode == 0, proc.stderr
    assert "Welcome: new version 1, active" in proc.stdout
    return tmp_path


def test_publish_emit_worker_runs_and_run(published):
    t = published
    assert wt(t, "emit", "guest.added", '{"id": "g1", "email": "g1@x.io"}', now="2026-11-22T10:00:00Z").returncode == 0
    (t / "g2.json").write_text('{"id": "g2", "email": "g2@x.io"}')
    assert wt(t, "emit", "guest.added", "@g2.json", now="2026-11-22T10:00:00Z").returncode == 0
    assert wt(t, "emit", "guest.added", "-", now="2026-11-22T10:00:00Z",
              stdin='{"id": "g3", "email": "g3@x.io"}').returncode == 0
    assert wt(t, "emit", "guest.left", '{"id": "g3"}', now="2026-11-22T11:00:00Z").returncode == 0
    runs = js(t, "runs", "--rule", "Welcome")
    assert [r["status"] for r in runs] == ["waiting", "waiting", "exited"]
    assert set(runs[0]) >= {"id", "rule", "version", "status", "started_at", "updated_at"}
    proc = wt(t, "--now", "2026-11-23T12:00:00Z", "worker", "--once", "--actions", "actions.py")
    assert proc.returncode == 0, proc.stderr
    assert [r["status"] for r in js(t, "runs", "--status", "completed")] == ["completed", "completed"]
    run = js(t, "run", str(runs[0]["id"]))
    actions = [s for s in run["steps"] if s["kind"] == "action"]
    assert [a["action"] for a in actions] == ["send_email", "tag"]
    assert actions[1]["result"] == {"tagged": "g1", "key": f"{runs[0]['id']}:1:1"}
    assert actions[0]["at"] == "2026-11-22T10:00:00Z" and actions[1]["at"] == "2026-11-23T12:00:00Z"
    assert {"at", "kind", "action", "args", "result", "error"} <= set(actions[0])
    assert "wait" in [s["kind"] for s in run["steps"]]
    text = wt(t, "run", str(runs[0]["id"])).stdout
    assert "send_email(to: \"g1@x.io\", subject: \"hello\")" in text
    rules = js(t, "rules")
    assert rules[0]["name"] == "Welcome" and rules[0]["state"] == "active" and rules[0]["trigger"] == "guest.added"
    assert rules[0]["completed"] == 2 and rules[0]["exited"] == 1


def test_versions_revert_uses_pause_enable(published):
    t = published
    (t / "rules.rules").write_text(RULES.replace('"hello"', '"hi"'))
    assert "new version 2" in wt(t, "publish", "rules.rules", "--actions", "actions.py").stdout
    assert "unchanged (version 2)" in wt(t, "publish", "rules.rules", "--actions", "actions.py").stdout
    assert wt(t, "revert", "Welcome", "1").returncode == 0
    versions = js(t, "versions", "Welcome")
    assert [(v["version"], v["author"], v["current"]) for v in versions] == [
        (1, "ci", False), (2, None, False), (3, "revert to 1", True)]
    assert all("created_at" in v for v in versions)
    assert [u["how"] for u in js(t, "uses", "guest.left")] == ["exit"]
    assert wt(t, "pause", "Welcome").returncode == 0
    assert js(t, "rules")[0]["state"] == "paused"
    assert wt(t, "enable", "Welcome").returncode == 0
    bad = wt(t, "revert", "Welcome", "7")
    assert bad.returncode == 1 and "no version 7" in bad.stderr


@pytest.mark.parametrize("payload, message", [
    ("{not json", "invalid JSON"),
    ('{"id": "g1"}', "field 'email': missing required field"),
    ('{"id": "g1", "email": "e", "age": "old"}', "field 'age': expected int"),
    ("x" * 1_100_000, "payload too large"),
    ('{"id": "\\ud800", "email": "e"}', "field 'id': not valid Unicode text (a lone surrogate"),
    ('{"id": "g1", "email": "e", "age": 1180591620717411303424}', "field 'age': integer 1180591620717411303424 "
                                                               "is out of the 64-bit range"),
    ('{"id": "g1", "email": "e", "\\udfff": 1}', "field '\\udfff': unknown field"),
], ids=["malformed", "missing", "mistyped", "oversized", "lone-surrogate", "int-above-64-bits",
        "surrogate-field-name"])
def test_bad_events_exit_1_with_field_and_reason_and_are_recorded(published, payload, message):
    t = published
    proc = wt(t, "emit", "guest.added", "-", stdin=payload)
    assert proc.returncode == 1
    assert message in proc.stderr and "Traceback" not in proc.stderr
    from whenthen.runtime.store import inspect, open_store

    store = open_store(_DBS[t])
    assert inspect.rows(store, "events", "status") == [("rejected",)]
    assert inspect.count(store, "runs") == 0
    store.close()


def test_unknown_trigger_and_usage_errors(published):
    t = published
    proc = wt(t, "emit", "guest.addd", "{}")
    assert proc.returncode == 1 and "did you mean 'guest.added'" in proc.stderr
    assert wt(t, "emit", "guest.added", "@missing.json").returncode == 2
    assert wt(t, "--now", "tomorrow", "worker", "--once").returncode == 2
    assert wt(t, "enable", "Nope").returncode == 1
    assert wt(t, "run", "99").returncode == 1
    assert wt(t, "publish", "missing.rules").returncode == 2


def test_ingest_reports_rejected_lines(published):
    t = published
    (t / "events.jsonl").write_text("\n".join([
        '{"trigger": "guest.added", "data": {"id": "g1", "email": "a@x.io"}}',
        '{"trigger": "guest.added", "data": {"id": "g2"}}',
        "not json",
        '{"trigger": "guest.added", "data": {"id": "g3", "email": "c@x.io"}}',
    ]) + "\n")
    proc = wt(t, "ingest", "events.jsonl")
    assert proc.returncode == 1
    assert "events.jsonl:2: error: guest.added: field 'email'" in proc.stderr
    assert "events.jsonl:3: error: invalid JSON" in proc.stderr
    assert "2 accepted, 2 rejected" in proc.stderr
    assert len(js(t, "runs")) == 2


def test_publish_with_errors_prints_diagnostics(tmp_path):
    (tmp_path / "bad.rules").write_text("rule \"X\" when nope.never then log(message: 'x')\n")
    proc = wt(tmp_path, "publish", "bad.rules")
    assert proc.returncode == 1 and "E101" in proc.stderr and "Traceback" not in proc.stderr


def test_simulate_command_formats_and_exit_status(tmp_path):
    (tmp_path / "rules.rules").write_text(RULES)
    (tmp_path / "actions.py").write_text(ACTIONS)
    (tmp_path / "events.jsonl").write_text(
        '{"trigger": "guest.added", "at": "2026-11-22T10:00:00Z", "data": {"id": "g1", "email": "a@x.io"}}\n')
    proc = wt(tmp_path, "simulate", "rules.rules", "--events", "events.jsonl", "--format", "jsonl",
              "--actions", "actions.py")
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert lines[-1]["kind"] == "summary" and lines[-1]["rules"]["Welcome"]["completed"] == 1
    assert [x["action"] for x in lines if x["kind"] == "action"] == ["send_email", "tag"]
    text = wt(tmp_path, "simulate", "rules.rules", "--events", "events.jsonl", "--actions", "actions.py")
    assert "run 1 · Welcome" in text.stdout
    (tmp_path / "events.jsonl").write_text('{"trigger": "guest.added", "data": {"id": 5}}\n')
    proc = wt(tmp_path, "simulate", "rules.rules", "--events", "events.jsonl", "--format", "jsonl",
              "--actions", "actions.py")
    assert proc.returncode == 1
    assert "events.jsonl:1: error: guest.added: field 'id'" in proc.stderr
    assert wt(tmp_path, "simulate", "rules.rules", "--events", "nope.jsonl").returncode == 2


def _catches(pid: int, signum: int) -> bool:
    """Whether process `pid` has installed a handler for `signum` (SigCgt in /proc)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = next((int(line.split()[1], 16) for line in status.splitlines() if line.startswith("SigCgt:")), 0)
    return bool(caught & (1 << (signum - 1)))


def test_worker_stops_cleanly_on_sigterm(published):
    import signal
    import time

    t = published
    env = {k: v for k, v in os.environ.items() if k not in ("WHENTHEN_DB", "WHENTHEN_NOW")}
    proc = subprocess.Popen([sys.executable, "-m", "whenthen", "--db", _DBS[t], "worker", "--idle", "0.05"],
                            cwd=t, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # under load the interpreter can take seconds to start: signal once SIGTERM is caught (Linux)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not _catches(proc.pid, signal.SIGTERM):
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert "stopping after the current run" in err and "Traceback" not in err
