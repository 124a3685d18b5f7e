"""simulate: the engine on a simulated clock over a file of events (SPEC 5)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from _paths import conformance_files
from whenthen.runtime.simulate import render_text, simulate

RULES = """
trigger job.created { id: str, size: int }
trigger job.done { id: str }
action price(size: int) -> { amount: float }

rule "Quote"
when job.created where size > 1
then
  let p = price(size: size)
  log(message: "quote {id}: {p.amount}")
  wait 2h
  emit job.done(id: id)
end

rule "Archive" when job.done then log(message: "archived {id}")
"""


def write(tmp_path: Path, rules: str, events: list[str]) -> tuple[Path, Path]:
    (tmp_path / "r.rules").write_text(rules)
    (tmp_path / "events.jsonl").write_text("\n".join(events) + "\n")
    return tmp_path / "r.rules", tmp_path / "events.jsonl"


def test_timeline_waits_emits_and_summary(tmp_path):
    rules, events = write(tmp_path, RULES, [
        '{"trigger": "job.created", "at": "2026-11-22T10:00:00Z", "data": {"id": "j1", "size": 3}}',
        '{"trigger": "job.created", "data": {"id": "j2", "size": 1}}',
        '{"trigger": "job.created", "at": "2026-11-22T13:00:00Z", "data": {"id": "j3", "size": 2}}',
    ])
    result = simulate([rules], events)
    assert result.ok
    kinds = [(r["kind"], r["at"], r.get("action") or r.get("trigger") or r.get("status")) for r in result.trace]
    # the wait of j1 (due 12:00) resumes before the event at 13:00; its emit is dispatched at once
    assert kinds == [
        ("action", "2026-11-22T10:00:00Z", "price"), ("action", "2026-11-22T10:00:00Z", "log"),
        ("run", "2026-11-22T10:00:00Z", "waiting"),
        ("emit", "2026-11-22T12:00:00Z", "job.done"), ("run", "2026-11-22T12:00:00Z", "completed"),
        ("action", "2026-11-22T12:00:00Z", "log"), ("run", "2026-11-22T12:00:00Z", "completed"),
        ("action", "2026-11-22T13:00:00Z", "price"), ("action", "2026-11-22T13:00:00Z", "log"),
        ("run", "2026-11-22T13:00:00Z", "waiting"),
        ("emit", "2026-11-22T15:00:00Z", "job.done"), ("run", "2026-11-22T15:00:00Z", "completed"),
        ("action", "2026-11-22T15:00:00Z", "log"), ("run", "2026-11-22T15:00:00Z", "completed"),
    ]
    assert result.trace[1]["args"] == {"message": "quote j1: "}  # no host module: actions return null
    assert result.summary == {
        "Archive": {"runs": 2, "filtered": 0, "completed": 2, "waiting": 0, "failed": 0, "exited": 0},
        "Quote": {"runs": 2, "filtered": 1, "completed": 2, "waiting": 0, "failed": 0, "exited": 0},
    }
    text = render_text(result)
    assert "run 1 · Quote" in text and 'price(size: 3)' in text and "Quote    2 runs, 1 filtered" in text


def test_host_actions_supply_results(tmp_path):
    rules, events = write(tmp_path, RULES.replace("action price(size: int) -> { amount: float }\n", ""), [
        '{"trigger": "job.created", "at": "2026-11-22T10:00:00Z", "data": {"id": "j1", "size": 3}}',
    ])

    def price(size: int) -> dict[str, float]:
        return {"amount": size * 1.5}

    result = simulate([rules], events, actions=[price])
    assert result.trace[1]["args"] == {"message": "quote j1: 4.5"}


def test_until_stops_the_clock_and_leaves_runs_waiting(tmp_path):
    rules, events = write(tmp_path, RULES, [
        '{"trigger": "job.created", "at": "2026-11-22T10:00:00Z", "data": {"id": "j1", "size": 3}}',
    ])
    result = simulate([rules], events, until=dt.datetime(2026, 11, 22, 11, tzinfo=dt.UTC))
    assert result.summary["Quote"]["waiting"] == 1


def test_invalid_events_are_reported_with_file_and_line_and_skipped(tmp_path):
    rules, events = write(tmp_path, RULES, [
        '{"trigger": "job.created", "at": "2026-11-22T10:00:00Z", "data": {"id": "j1", "size": "big"}}',
        "{not json",
        '{"trigger": "job.craeted", "data": {}}',
        '{"trigger": "job.created", "data": {"id": "j2", "size": 5}}',
    ])
    result = simulate([rules], events)
    assert not result.ok
    assert result.event_errors[0] == (f"{events}:1: error: job.created: field 'size': expected int, "
                                      'got string "big"')
    assert result.event_errors[1].startswith(f"{events}:2: error: invalid JSON")
    assert "unknown trigger 'job.craeted'; did you mean 'job.created'" in result.event_errors[2]
    assert result.summary["Quote"]["runs"] == 1  # the rest was played


def test_program_errors_stop_before_playing(tmp_path):
    rules, events = write(tmp_path, "rule \"X\" when nope.never then log(message: 'x')\n", [])
    result = simulate([rules], events)
    assert [d.code for d in result.diagnostics if d.is_error] == ["E101"]
    assert result.trace == []


def test_conformance_cases_through_the_api():
    cases = conformance_files("0[1-6]*")
    assert len(cases) == 6, [c.name for c in cases]  # checking zero cases must not pass
    for case in cases:
        expect = [json.loads(line) for line in (case / "expect.jsonl").read_text().splitlines() if line.strip()]
        result = simulate([case], case / "events.jsonl")
        summary = [e for e in expect if e["kind"] == "summary"][0]["rules"]
        assert {k: result.summary[k] for k in summary} == summary, case.name


def test_a_line_whose_at_goes_backwards_is_invalid_and_skipped(tmp_path):
    rules, events = write(tmp_path, RULES, [
        '{"trigger": "job.created", "at": "2026-11-22T10:00:00Z", "data": {"id": "j1", "size": 3}}',
        '{"trigger": "job.created", "at": "2026-11-22T09:00:00Z", "data": {"id": "j2", "size": 3}}',
        '{"trigger": "job.created", "data": {"id": "j3", "size": 3}}',
    ])
    result = simulate([rules], events)
    assert result.event_errors == [
        f"{events}:2: error: job.created: 'at' 2026-11-22T09:00:00Z is earlier than the previous line's "
        "(2026-11-22T10:00:00Z); events are played in file order"]
    assert result.summary["Quote"]["runs"] == 2  # j1 and j3 (at 10:00, the previous valid line's time)
    quoted = [r["args"]["size"] for r in result.trace if r.get("action") == "price"]
    assert quoted == [3, 3] and all(r["at"] >= "2026-11-22T10:00:00Z" for r in result.trace)


def test_a_line_that_is_not_utf8_spoils_that_line_only(tmp_path):
    rules, events = write(tmp_path, RULES, [])
    events.write_bytes(b'{"trigger": "job.created", "at": "2026-11-22T10:00:00Z", "data": {"id": "j1", "size": 3}}\n'
                       b'{"trigger": "job.created", "data": {"id": "j\xe9", "size": 3}}\n'
                       b'{"trigger": "job.created", "data": {"id": "j3", "size": 3}}\n')
    result = simulate([rules], events)
    assert result.event_errors == [f"{events}:2: error: not UTF-8 text: byte 0xe9 at column 45"]
    assert result.summary["Quote"]["runs"] == 2


def test_host_code_runs_in_simulate_when_a_module_is_given(tmp_path):
    """SPEC 5: a host module's code runs (it supplies results); stdlib actions never send."""
    rules, events = write(tmp_path, RULES.replace("action price(size: int) -> { amount: float }\n", "")
                          .replace('log(message: "quote {id}: {p.amount}")',
                                   'send_email(to: "a@x.io", subject: "quote {p.amount}")'), [
        '{"trigger": "job.created", "at": "2026-11-22T10:00:00Z", "data": {"id": "j1", "size": 3}}',
    ])
    calls: list[int] = []

    def price(size: int) -> dict[str, float]:
        calls.append(size)
        return {"amount": 2.0}

    result = simulate([rules], events, actions=[price])
    assert calls == [3]
    mail = [r for r in result.trace if r.get("action") == "send_email"]
    assert mail[0]["args"] == {"to": "a@x.io", "subject": "quote 2.0"}
