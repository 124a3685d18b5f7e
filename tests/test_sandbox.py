"""The DSL is a sandbox: a rule reaches only its event, its locals and declared functions and actions."""

from __future__ import annotations

import datetime as dt

import pytest

import whenthen
from whenthen.runtime.clock import SimulatedClock
from whenthen.runtime.engine import Engine
from whenthen.stdlib.config import StdlibConfig

SCHEMA = "trigger order.placed { id: str, meta: json, note: str? }\n"
EVENT = {"id": "o1", "meta": {"a": 1, "keys": 5, "nested": {"b": [1, 2]}}, "note": "gift: {event} {id}"}


@pytest.mark.parametrize("source, code, message", [
    ("event.__class__", "E102", "unknown field '__class__' on order.placed"),
    ("id.__class__", "E102", "has no field '__class__'"),
    ("note.upper", "E102", "has no field 'upper'"),
    ("__import__", "E102", "unknown field '__import__'"),
    ("event.__init__.__globals__", "E102", "unknown field '__init__'"),
    ("len.__call__", "E102", "unknown field 'len'"),
    ("eval('1')", "E104", "eval"),
    ("open('/etc/passwd')", "E104", "open"),
    ("getattr(event, 'id')", "E104", "getattr"),
])
def test_the_checker_rejects_reaching_outside(source, code, message):
    program = whenthen.compile(SCHEMA)
    with pytest.raises(whenthen.CompileError) as caught:
        whenthen.evaluate(source, trigger="order.placed", event=EVENT, schema=program)
    [diag] = [d for d in caught.value.diagnostics if d.is_error]
    assert diag.code == code and message in diag.message


@pytest.mark.parametrize("source, value", [
    ("meta.__dict__", None),
    ("meta.__class__.__name__", None),
    ("meta.get", None),         # a dict's methods are not fields
    ("meta.items", None),
    ("meta.keys", 5),           # ... but its keys are, whatever their names
    ("meta.nested.b", [1, 2]),
])
def test_json_values_expose_only_their_keys(source, value):
    program = whenthen.compile(SCHEMA)
    assert whenthen.evaluate(source, trigger="order.placed", event=EVENT, schema=program) == value


@pytest.mark.parametrize("source", ["meta.nested.b.__len__", "meta.a.real", "meta.nested.b.append"])
def test_fields_of_json_lists_and_numbers_fail_the_evaluation(source):
    from whenthen.diagnostics import RuntimeFailure

    program = whenthen.compile(SCHEMA)
    with pytest.raises(RuntimeFailure, match="cannot read field"):
        whenthen.evaluate(source, trigger="order.placed", event=EVENT, schema=program)


def test_rules_running_in_the_engine_see_data_not_python(tmp_path):
    engine = Engine(tmp_path / "wt.db", SimulatedClock(dt.datetime(2026, 11, 22, tzinfo=dt.UTC)),
                    config=StdlibConfig())
    engine.publish(whenthen.compile(SCHEMA + "trigger order.noted { id: str, meta: json? }\n" + """
rule "R" when order.placed where meta.__class__ is null and meta.get is null then
  let m = meta
  log(message: "[{m.__dict__}] [{m.keys}] [{note}]")
  send_message(to: id, text: note)
  emit order.noted(id: "{note}", meta: m.__class__)
end
""", engine.schema), enable=True)
    engine.emit("order.placed", EVENT)
    first = engine.runs()[0]
    steps = [s for s in engine.run(first["id"])["steps"] if s["kind"] == "action"]
    # templates render the inserted value as text and never evaluate it again: '{event} {id}' stays
    assert steps[0]["args"] == {"message": "[] [5] [gift: {event} {id}]"}
    assert [o["args"] for o in engine.outbox()][0] == {"to": "o1", "text": "gift: {event} {id}", "channel": "default"}
    [emitted] = [e for e in engine.events() if e["trigger"] == "order.noted"]
    assert '"id":"gift: {event} {id}"' in emitted["data"] and '"meta":null' in emitted["data"]


def test_email_templates_do_not_evaluate_inserted_values(tmp_path):
    from whenthen.stdlib.templates import fill, render_email

    subject, body = render_email("Subject: Re: {subject}\n\n{body} / {to}", to="{subject}", subject="{body}",
                                 body="{to} {{x}} {event.__class__}")
    assert subject == "Re: {body}"
    assert body == "{to} {{x}} {event.__class__} / {subject}"
    with pytest.raises(Exception, match="unknown placeholder"):
        fill("{to.__class__.__mro__}", {"to": "x"})
