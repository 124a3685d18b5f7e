"""The hostile-input suite (issue 13): generated payloads (every declared type, edge values, odd
Unicode, huge and deep values) and rule fragments never produce a traceback, every rejection
names the trigger (and the field), and nothing is half-stored."""

from __future__ import annotations

import json
import re
import sqlite3
import string
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import whenthen
from whenthen.api import compile as compile_rules
from whenthen.cli import main
from whenthen.diagnostics import EventError
from whenthen.runtime.engine import Engine

SCHEMA = """
trigger every.type {
  s: str, i: int, f: float, b: bool, dt: datetime, d: date, du: duration, j: json,
  l: list[int], e: 'a' | 'b', o: { x: str, y: int? }, opt: str?
}

rule "All" when every.type where s matches '^(a+)+$' or i > 0 then
  log(message: "{s} {i} {f} {dt} {d} {du} {j} {l} {e} {o.x}")
  emit every.type(s: "x", i: 0, f: f, b: b, dt: dt, d: d, du: du, j: j, l: l, e: e, o: o)
end
"""
FIELDS = ("s", "i", "f", "b", "dt", "d", "du", "j", "l", "e", "o", "opt")

_odd_text = st.text(st.characters(codec=None), max_size=30) | st.sampled_from(
    ["\ud800", "a\udfffb", "\x00", "\u2028\u2029", "\ufeff", "🎉" * 5, "é" * 3, "x" * 5000])
_numbers = st.one_of(
    st.integers(), st.sampled_from([2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 1180591620717411303424, 10**400]),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([1e308, -1e308, 5e-324, -0.0]))
_scalars = st.one_of(st.none(), st.booleans(), _numbers, _odd_text,
                     st.sampled_from(["2026-11-22T10:00:00Z", "2026-02-30", "9999-12-31T23:59:59-01:00",
                                      "0001-01-01T00:00:00+01:00", "1h30m", "99999999999999d", "a", "b"]))
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4)
                       | st.dictionaries(_odd_text, inner, max_size=4), max_leaves=20)


def _deep(n: int) -> object:
    value: object = 1
    for _ in range(n):
        value = [value]
    return value


payloads = st.one_of(
    st.dictionaries(st.sampled_from(FIELDS), _values | st.integers(0, 60).map(_deep), max_size=12),
    st.dictionaries(_odd_text, _values, max_size=4),
    _values,
)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    engine = Engine(tmp_path_factory.mktemp("hostile") / "wt.db")
    engine.publish(compile_rules(SCHEMA, engine.schema), enable=True)
    return engine


def _counts(engine: Engine) -> tuple[int, int]:
    return len(engine.runs()), len([e for e in engine.events() if e["status"] != "rejected"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=payloads)
def test_engine_emit_accepts_or_rejects_naming_trigger_and_field(engine: Engine, payload: object) -> None:
    before = _counts(engine)
    rejected_before = len(engine.events(status="rejected"))
    try:
        engine.emit("every.type", payload)
    except EventError as exc:
        message = str(exc)
        assert message.startswith("every.type: "), message
        assert exc.trigger == "every.type"
        if isinstance(payload, dict):
            assert exc.field is not None and f"field '{exc.field}'" in message, message
        message.encode("utf-8")  # printable: no lone surrogate reaches a message
        assert _counts(engine) == before  # nothing half-stored
        assert len(engine.events(status="rejected")) == rejected_before + 1
        return
    # accepted: the event and its runs are stored, and every stored text reads back as JSON
    assert _counts(engine)[1] > before[1]
    with sqlite3.connect(engine.store.path) as c:
        for (data,) in c.execute("SELECT data FROM events ORDER BY id DESC LIMIT 5"):
            json.loads(data)


_line_bytes = st.one_of(
    st.binary(max_size=80),
    payloads.map(lambda p: json.dumps({"trigger": "every.type", "data": p}, allow_nan=True).encode(
        "utf-8", "surrogatepass")),
    st.sampled_from([b'{"trigger": "every.type", "data": {"s": "a"}, "at": 1}', b'{"trigger": "\xff"}',
                     b"[" * 5000, b'{"trigger": "every.type", "trigger": "x"}', b"\xef\xbb\xbf{}"]),
)


@settings(max_examples=60, deadline=None)
@given(lines=st.lists(_line_bytes, max_size=12))
def test_cli_ingest_and_emit_never_print_a_traceback(tmp_path_factory: pytest.TempPathFactory,
                                                     lines: list[bytes]) -> None:
    root = tmp_path_factory.mktemp("ingest")
    db = str(root / "wt.db")
    runner = CliRunner()
    (root / "r.rules").write_text(SCHEMA)
    assert runner.invoke(main, ["--db", db, "publish", str(root / "r.rules"), "--enable"]).exit_code == 0
    (root / "e.jsonl").write_bytes(b"\n".join(line.replace(b"\n", b" ") for line in lines))
    result = runner.invoke(main, ["--db", db, "ingest", str(root / "e.jsonl")])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code in (0, 1)
    reported = {int(n) for n in re.findall(r"e\.jsonl:(\d+): error: ", result.stderr)}
    non_blank = [n for n, line in enumerate(lines, 1) if line.replace(b"\n", b" ").strip()]
    assert reported <= set(non_blank)
    with sqlite3.connect(db) as c:  # one row per non-blank line, accepted or rejected
        assert c.execute("SELECT count(*) FROM events WHERE origin = 'external'").fetchone()[0] == len(non_blank)
    for line in lines[:3]:
        result = runner.invoke(main, ["--db", db, "emit", "every.type", "-"], input=line)
        assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
        assert result.exit_code in (0, 1)


_fragments = st.lists(st.one_of(
    st.sampled_from(["rule", "when", "then", "end", "where", "trigger", "action", "emit", "wait", "within",
                     "every", "at", "cron", "timezone", "matches", "'(a+)+$'", "'[z-a]'", '"{', "}", "{", "(",
                     ")", ",", ":", "=", "1e999", "9" * 30, "every.type", "s", "\"\\ud800\"", "'\\x'",
                     "for", "in", "repeat", "times", "break", "switch", "case", "stop", "exit", "let"]),
    st.text(string.printable + "é🎉\u2028\x00", max_size=6)), max_size=30).map(" ".join)


@settings(max_examples=200, deadline=None)
@given(fragment=_fragments)
def test_rule_fragments_give_diagnostics_never_an_exception(fragment: str) -> None:
    diagnostics = whenthen.check([SCHEMA.split("rule")[0], fragment + "\n"])
    for d in diagnostics:
        assert re.fullmatch(r"[EW]\d{3}", d.code) and d.line >= 1 and d.column >= 1
        d.render(fragment + "\n").encode("utf-8")


@settings(max_examples=50, deadline=None)
@given(raw=st.binary(max_size=200))
def test_rule_files_of_any_bytes_give_diagnostics(tmp_path_factory: pytest.TempPathFactory, raw: bytes) -> None:
    path = Path(tmp_path_factory.mktemp("bytes")) / "x.rules"
    path.write_bytes(raw)
    result = CliRunner().invoke(main, ["check", str(path)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code in (0, 1)
