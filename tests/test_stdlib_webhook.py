"""webhook against a real HTTP server on loopback: signature, idempotency key, retries, 4xx, timeouts."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from pathlib import Path

from _servers import free_port, http_server
from whenthen.api import compile as compile_rules
from whenthen.runtime.clock import SimulatedClock
from whenthen.runtime.engine import Engine, RetryPolicy
from whenthen.stdlib.config import StdlibConfig
from whenthen.stdlib.webhook import MAX_RESPONSE_BYTES, verify

T0 = dt.datetime(2026, 11, 22, 10, 0, tzinfo=dt.UTC)
SCHEMA = "trigger order.placed { id: str, total: float, items: list[str], note: str?, at: datetime, hold: duration }\n"
ORDER = {"id": "o1", "total": 80, "items": ["a", "b"], "note": "gift: {event}", "at": "2026-11-22T09:00:00Z",
         "hold": 90}
SECRET = "topsecret"


def make(tmp_path: Path, rules: str, *, attempts: int = 3, timeout: float = 5.0) -> tuple[Engine, SimulatedClock]:
    clock = SimulatedClock(T0)
    engine = Engine(tmp_path / "wt.db", clock, config=StdlibConfig(webhook_secret=SECRET, webhook_timeout=timeout),
                    retry=RetryPolicy(attempts=attempts, base_delay=30, factor=2))
    engine.publish(compile_rules(SCHEMA + rules, engine.schema), enable=True)
    return engine, clock


def actions(engine: Engine, rule: str) -> list[dict]:
    run = engine.runs(rule=rule)[0]
    return [s for s in engine.run(run["id"])["steps"] if s["kind"] == "action"]


def test_signed_request_and_json_result(tmp_path):
    with http_server() as server:
        server.script["/hook"] = [(201, {"accepted": True, "id": 7})]
        engine, _ = make(tmp_path, f"""
rule "Notify" when order.placed then
  let r = webhook(url: '{server.url("/hook")}', body: event)
  log(message: "status {{r.status}}, id {{r.body.id}}")
end
""")
        engine.emit("order.placed", ORDER)
    [request] = server.requests
    assert request["method"] == "POST"
    body = request["body"]
    assert json.loads(body) == ORDER  # the payload field holding '{event}' is sent as written
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert request["headers"]["X-Whenthen-Signature"] == expected
    assert verify(SECRET, body, request["headers"]["X-Whenthen-Signature"])
    assert not verify(SECRET, body + b" ", expected) and not verify("other", body, expected)
    assert request["headers"]["Content-Type"] == "application/json"
    run_id = engine.runs()[0]["id"]
    assert request["headers"]["Idempotency-Key"] == f"{run_id}:0"
    steps = actions(engine, "Notify")
    assert steps[0]["result"] == {"status": 201, "body": {"accepted": True, "id": 7}}
    assert steps[1]["args"] == {"message": "status 201, id 7"}


def test_5xx_is_retried_with_the_same_idempotency_key(tmp_path):
    with http_server() as server:
        server.script["/flaky"] = [(500, {"error": "db down"}), (503, {"error": "busy"}), (200, {"ok": 1})]
        engine, clock = make(tmp_path, f"rule \"N\" when order.placed then webhook(url: '{server.url('/flaky')}', "
                                       "body: {{}}, method: 'PUT')\n".replace("{{}}", "null"))
        engine.emit("order.placed", ORDER)
        assert engine.runs()[0]["status"] == "waiting"  # durably waiting for the retry
        for seconds in (30, 60):
            clock.advance(dt.timedelta(seconds=seconds))
            assert engine.run_due() == 1
    keys = [r["headers"]["Idempotency-Key"] for r in server.requests]
    assert len(keys) == 3 and len(set(keys)) == 1
    assert [r["method"] for r in server.requests] == ["PUT"] * 3
    # no body: the signature covers the empty byte string
    assert server.requests[0]["headers"]["X-Whenthen-Signature"] == \
        "sha256=" + hmac.new(SECRET.encode(), b"", hashlib.sha256).hexdigest()
    steps = actions(engine, "N")
    assert [(s["attempt"], s["status"]) for s in steps] == [(1, "failed"), (2, "failed"), (3, "done")]
    assert steps[0]["error"] == f"webhook PUT {server.url('/flaky')}: HTTP 500: {{\"error\": \"db down\"}}"
    assert steps[2]["result"] == {"status": 200, "body": {"ok": 1}}
    assert engine.runs()[0]["status"] == "completed"


def test_repeated_5xx_fails_the_action_and_the_run(tmp_path):
    with http_server() as server:
        server.script["/down"] = [(502, {"error": "bad gateway"})]
        engine, clock = make(tmp_path, f"""
rule "N" when order.placed then webhook(url: '{server.url("/down")}')
rule "A" when action.failed then log(message: action.error)
""", attempts=2)
        engine.emit("order.placed", ORDER)
        clock.advance(dt.timedelta(seconds=30))
        engine.run_due()
    assert len(server.requests) == 2
    run = engine.runs(rule="N")[0]
    assert run["status"] == "failed" and "HTTP 502" in run["error"]
    assert "HTTP 502" in actions(engine, "A")[0]["args"]["message"]
    assert [e["trigger"] for e in engine.events()].count("run.failed") == 1


def test_4xx_is_a_result_not_a_retry(tmp_path):
    with http_server() as server:
        server.script["/missing"] = [(404, {"error": "no such order"})]
        engine, _ = make(tmp_path, f"""
rule "N" when order.placed then
  let r = webhook(url: '{server.url("/missing")}', body: {{}})
  if r.status >= 400 then log(message: "rejected: {{r.body.error}}") end
end
""".replace("body: {}", "body: items"))
        engine.emit("order.placed", ORDER)
    assert len(server.requests) == 1 and json.loads(server.requests[0]["body"]) == ["a", "b"]
    steps = actions(engine, "N")
    assert steps[0]["result"] == {"status": 404, "body": {"error": "no such order"}}
    assert steps[1]["args"] == {"message": "rejected: no such order"}
    assert engine.runs()[0]["status"] == "completed"


def test_timeout_fails_cleanly_after_retries(tmp_path):
    with http_server() as server:
        server.script["/slow"] = [("sleep", 1.0)]
        engine, clock = make(tmp_path, f"rule \"N\" when order.placed then webhook(url: '{server.url('/slow')}')\n",
                             attempts=2, timeout=0.2)
        engine.emit("order.placed", ORDER)
        clock.advance(dt.timedelta(seconds=30))
        engine.run_due()
    run = engine.runs()[0]
    assert run["status"] == "failed"
    assert f"webhook POST {server.url('/slow')}: timed out after 0.2 s" in run["error"]
    assert [s["status"] for s in actions(engine, "N")] == ["failed", "failed"]


def test_connection_refused_and_bad_urls(tmp_path):
    port = free_port()  # nothing listens there
    engine, clock = make(tmp_path, f"""
rule "Refused" when order.placed then webhook(url: 'http://127.0.0.1:{port}/x')
rule "BadScheme" when order.placed then webhook(url: 'file:///etc/passwd')
rule "BadMethod" when order.placed then webhook(url: 'http://127.0.0.1:{port}/x', method: 'TRACE')
""", attempts=2)
    engine.emit("order.placed", ORDER)
    clock.advance(dt.timedelta(seconds=30))
    engine.run_due()
    refused = engine.runs(rule="Refused")[0]
    assert refused["status"] == "failed" and "ConnectError" in refused["error"]
    assert len(actions(engine, "Refused")) == 2
    # a URL or method that can never work is not retried
    assert "must be an http:// or https:// URL" in engine.runs(rule="BadScheme")[0]["error"]
    assert len(actions(engine, "BadScheme")) == 1
    assert "method must be one of" in engine.runs(rule="BadMethod")[0]["error"]


def test_large_and_non_json_responses(tmp_path):
    with http_server() as server:
        server.script["/big"] = [(200, b"x" * (MAX_RESPONSE_BYTES + 1))]
        server.script["/text"] = [(200, b"plain words")]
        engine, _ = make(tmp_path, f"""
rule "N" when order.placed then
  webhook(url: '{server.url("/big")}')
  webhook(url: '{server.url("/text")}')
end
""")
        engine.emit("order.placed", ORDER)
    steps = actions(engine, "N")
    assert steps[0]["result"] == {"status": 200, "body": None}
    assert steps[1]["result"] == {"status": 200, "body": "plain words"}


def test_without_a_secret_there_is_no_signature(tmp_path):
    with http_server() as server:
        engine = Engine(tmp_path / "wt.db", SimulatedClock(T0), config=StdlibConfig())
        engine.publish(compile_rules(SCHEMA + f"rule \"N\" when order.placed then webhook(url: '{server.url('/')}')\n",
                                     engine.schema), enable=True)
        engine.emit("order.placed", ORDER)
    assert "X-Whenthen-Signature" not in server.requests[0]["headers"]
    assert server.requests[0]["body"] == b""
