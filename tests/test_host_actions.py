"""Host actions and triggers from Python, unbound declared actions, the outbox command."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel

import whenthen
from _models import Address, Order
from whenthen.runtime.clock import SimulatedClock
from whenthen.runtime.engine import Engine, EngineError
from whenthen.stdlib.config import StdlibConfig

T0 = dt.datetime(2026, 11, 22, 10, 0, tzinfo=dt.UTC)




class Ticket(BaseModel):
    id: str
    url: str


ORDER = {"id": "o1", "total": 120.5, "status": "new", "tags": ["gift"], "ship_to": {"city": "Lyon"},
         "placed_at": "2026-11-22T09:00:00Z"}


def engine_with_host(tmp_path: Path) -> tuple[Engine, list]:
    engine = Engine(tmp_path / "wt.db", SimulatedClock(T0), config=StdlibConfig())
    calls: list = []
    engine.trigger("order.placed", Order)

    @engine.action
    def open_ticket(order_id: str, priority: int = 1, idempotency_key: str = "") -> Ticket:
        """Open a support ticket for an order."""
        calls.append((order_id, priority, idempotency_key))
        return Ticket(id=f"T-{order_id}", url=f"https://tickets.test/{order_id}")

    return engine, calls


def test_host_trigger_and_typed_action_run_end_to_end(tmp_path):
    engine, calls = engine_with_host(tmp_path)
    program = whenthen.compile("""
rule "Big orders" when order.placed where total > 100 and ship_to.city = 'Lyon' then
  let t = open_ticket(order_id: id, priority: 2)
  log(message: "ticket {t.id} at {t.url} for {order.tags}")
end
""", schema=engine)
    engine.publish(program, enable=True)
    engine.check_bindings()  # every action the rules call is bound
    engine.emit("order.placed", ORDER)
    run = engine.run(engine.runs()[0]["id"])
    assert run["status"] == "completed"
    assert calls == [("o1", 2, f"{run['id']}:0:1")]
    assert run["steps"][-1]["args"] == {"message": "ticket T-o1 at https://tickets.test/o1 for gift"}
    with pytest.raises(whenthen.EventError, match="order.placed: field 'ship_to.city': missing required field"):
        engine.emit("order.placed", dict(ORDER, ship_to={}))


def test_annotations_type_the_checker_and_docstrings_document(tmp_path):
    engine, _ = engine_with_host(tmp_path)
    sig = engine.schema.actions["open_ticket"]
    assert sig.doc == "Open a support ticket for an order."
    assert [p.name for p in sig.params] == ["order_id", "priority"]  # the key is not a rule argument
    assert str(sig.result) == "{ id: str, url: str }"
    diags = whenthen.check("""
rule "R" when order.placed then
  let t = open_ticket(order_id: total)
  log(message: t.missing)
  log(message: ship_to.country)
end
""", schema=engine)
    assert [d.code for d in diags] == ["E103", "E102", "E102"]
    assert "unknown field 'missing'" in diags[1].message


def test_a_host_action_named_send_message_is_the_transport(tmp_path):
    engine = Engine(tmp_path / "wt.db", SimulatedClock(T0), config=StdlibConfig())
    sent: list = []

    @engine.action
    def send_message(to: str, text: str, channel: str = "default", idempotency_key: str = "") -> dict:
        """Deliver a chat message through the host's gateway."""
        sent.append((to, text, channel))
        return {"message_id": f"chat-{idempotency_key}"}

    engine.publish(whenthen.compile("trigger ping.sent { n: int }\nwhen ping.sent then send_message(to: 'ops', "
                                    "text: \"ping {n}\")", schema=engine), enable=True)
    engine.emit("ping.sent", {"n": 3})
    assert sent == [("ops", "ping 3", "default")] and engine.outbox() == []


def test_unbound_declared_action_is_an_error_at_start_unless_opted_into_the_outbox(tmp_path):
    source = "trigger ping.sent { n: int }\naction page(who: str) -> { ok: bool }\n" \
             "rule \"P\" when ping.sent then page(who: 'ops')\n"
    engine = Engine(tmp_path / "wt.db", SimulatedClock(T0), config=StdlibConfig())
    engine.publish(whenthen.compile(source), enable=True)
    assert engine.unbound_actions() == ["page"]
    with pytest.raises(EngineError, match="no implementation for action\\(s\\) page"):
        engine.check_bindings()
    recording = Engine(tmp_path / "wt.db", SimulatedClock(T0), config=StdlibConfig(unbound_actions="outbox"))
    recording.check_bindings()
    recording.emit("ping.sent", {"n": 1})
    assert recording.runs()[0]["status"] == "completed"
    assert [(o["action"], o["args"]) for o in recording.outbox()] == [("page", {"who": "ops"})]


# ----------------------------------------------------------------------------- the CLI


def wt(tmp_path: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("WHENTHEN_")}
    return subprocess.run([sys.executable, "-m", "whenthen", "--db", str(tmp_path / "wt.db"), *args],
                          capture_output=True, text=True, cwd=tmp_path, env={**base, **(env or {})}, timeout=60)


def test_cli_unbound_actions_outbox_and_bad_config(tmp_path):
    (tmp_path / "rules.rules").write_text("""
trigger ping.sent { n: int }
action page(who: str) -> { ok: bool }
rule "P" when ping.sent then
  page(who: 'ops')
  send_email(to: 'ops@example.com', subject: "ping {n}")
end
""")
    (tmp_path / "actions.py").write_text("def page(who: str) -> dict:\n    return {'ok': True}\n")
    assert wt(tmp_path, "publish", "rules.rules", "--enable").returncode == 0
    for command in (["emit", "ping.sent", '{"n": 1}'], ["worker", "--once"]):
        proc = wt(tmp_path, *command)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        assert "error: no implementation for action(s) page" in proc.stderr
    assert wt(tmp_path, "emit", "ping.sent", '{"n": 1}', "--actions", "actions.py").returncode == 0
    assert wt(tmp_path, "emit", "ping.sent", '{"n": 2}', env={"WHENTHEN_UNBOUND_ACTIONS": "outbox"}).returncode == 0
    rows = json.loads(wt(tmp_path, "outbox", "--format", "json").stdout)
    assert [(r["action"], r["args"].get("subject") or r["args"].get("who")) for r in rows] == [
        ("send_email", "ping 1"), ("page", "ops"), ("send_email", "ping 2")]
    assert {"id", "run_id", "action", "args", "idem_key", "created_at"} <= set(rows[0])
    text = wt(tmp_path, "outbox").stdout
    assert text.splitlines()[0].split() == ["ID", "RUN", "ACTION", "CREATED", "ARGS"]
    assert 'subject: "ping 1"' in text
    bad = wt(tmp_path, "emit", "ping.sent", '{"n": 3}', env={"WHENTHEN_SMTP_HOST": "h", "WHENTHEN_SMTP_TLS": "tls9"})
    assert bad.returncode == 2 and bad.stderr.strip() == \
        "error: SMTP tls must be one of starttls, ssl, none, not 'tls9'"
    missing = wt(tmp_path, "--config", "nope.toml", "runs")
    assert missing.returncode == 2 and missing.stderr.strip() == "error: config file not found: nope.toml"


HOST_MODULE = '''
from pydantic import BaseModel


class Order(BaseModel):
    id: str
    total: float


TRIGGERS = {"order.placed": Order}


def refund(order_id: str, amount: float) -> dict:
    """Refund an order."""
    return {"refunded": amount}
'''


def test_cli_host_module_with_triggers_and_actions(tmp_path):
    (tmp_path / "host.py").write_text(HOST_MODULE)
    (tmp_path / "rules.rules").write_text("when order.placed where total > 100 then refund(order_id: id, amount: total)\n")
    unknown = wt(tmp_path, "publish", "rules.rules", "--enable")
    assert unknown.returncode == 1 and "unknown trigger 'order.placed'" in unknown.stderr
    assert wt(tmp_path, "publish", "rules.rules", "--enable", "--actions", "host.py").returncode == 0
    ok = wt(tmp_path, "emit", "order.placed", '{"id": "o1", "total": 150}', "--actions", "host.py")
    assert ok.returncode == 0, ok.stderr
    bad = wt(tmp_path, "emit", "order.placed", '{"id": "o2", "total": "lots"}', "--actions", "host.py")
    assert bad.returncode == 1 and "order.placed: field 'total': expected float" in bad.stderr
    run = json.loads(wt(tmp_path, "run", "1", "--format", "json").stdout)
    assert run["status"] == "completed" and run["steps"][0]["result"] == {"refunded": 150}


def test_model_parameters_receive_model_instances(tmp_path):
    engine = Engine(tmp_path / "wt.db", SimulatedClock(T0), config=StdlibConfig())
    engine.trigger("order.placed", Order)
    received: list = []

    @engine.action
    def ship(order_id: str, to: Address, also: list[Address] | None = None, idempotency_key: str = "") -> None:
        """Ship an order."""
        received.append((order_id, to, also, idempotency_key))

    engine.publish(whenthen.compile("when order.placed then ship(order_id: id, to: ship_to, also: [ship_to])",
                                    schema=engine), enable=True)
    engine.emit("order.placed", ORDER)
    [(order_id, to, also, key)] = received
    assert isinstance(to, Address) and to == Address(city="Lyon")
    assert also == [Address(city="Lyon")] and key == "1:0:1"


def test_log_goes_to_the_run_history_and_python_logging(tmp_path, caplog):
    engine = Engine(tmp_path / "wt.db", SimulatedClock(T0), config=StdlibConfig())
    engine.publish(whenthen.compile("trigger ping.sent { n: int }\nrule \"L\" when ping.sent then log(message: "
                                    "\"got {n}\")"), enable=True)
    with caplog.at_level("INFO", logger="whenthen.rules"):
        engine.emit("ping.sent", {"n": 4})
    assert [(r.name, r.getMessage()) for r in caplog.records] == [("whenthen.rules", "L (run 1): got 4")]
    [step] = engine.run(1)["steps"]
    assert step["action"] == "log" and step["args"] == {"message": "got 4"} and step["status"] == "done"


def test_simulate_and_demo_take_the_host_modules_triggers(tmp_path):
    """An `--actions` module's TRIGGERS declare triggers for simulate as they do for emit."""
    (tmp_path / "host.py").write_text(
        "from pydantic import BaseModel\n"
        "class Order(BaseModel):\n"
        "    order_id: str\n"
        "    total: float\n"
        "TRIGGERS = {'order.placed': Order}\n"
        "def confirm(order_id: str) -> None:\n"
        "    pass\n"
        "ACTIONS = [confirm]\n"
    )
    (tmp_path / "rules.rules").write_text(
        "when order.placed where total > 10 then confirm(order_id: order_id)\n")
    (tmp_path / "events.jsonl").write_text(
        '{"trigger": "order.placed", "at": "2026-11-23T10:00:00Z", "data": {"order_id": "o1", "total": 12}}\n'
        '{"trigger": "order.placed", "data": {"order_id": "o2", "total": 3}}\n')
    done = wt(tmp_path, "simulate", "rules.rules", "--events", "events.jsonl", "--format", "jsonl",
              "--actions", "host.py")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [x["args"] for x in lines if x["kind"] == "action"] == [{"order_id": "o1"}]
    assert lines[-1]["rules"]["rules:1"]["filtered"] == 1


def test_repl_takes_the_host_modules_triggers(tmp_path):
    test_simulate_and_demo_take_the_host_modules_triggers(tmp_path)  # writes host.py and rules.rules
    script = ':event order.placed {"order_id": "o1", "total": 12}\ntotal > 10\n' \
             ':emit order.placed {"order_id": "o2", "total": 20}\n'
    done = subprocess.run([sys.executable, "-m", "whenthen", "repl", "rules.rules", "--actions", "host.py"],
                          input=script, capture_output=True, text=True, cwd=tmp_path, timeout=60,
                          env={**os.environ, "WHENTHEN_HISTORY": ""})
    assert done.returncode == 0, done.stderr
    assert "total > 10  true" in done.stdout
    assert "confirm(order_id: 'o2')" in done.stdout
