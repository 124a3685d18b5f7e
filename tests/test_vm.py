"""The VM: every statement, SPEC 2.4 null semantics, time arithmetic, failures, snapshots and resume."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _vm_support import T0, RecordingHost, actions, compile_text, only_rule, run_all
from whenthen.compiler.code import BytecodeError, RuleCode
from whenthen.runtime.vm import (
    Done,
    Failed,
    Frame,
    HostAbort,
    Suspended,
    eval_filter,
    exit_correlation,
    exit_matches,
    filter_error,
    run,
    start_frame,
    wait_matches,
)
from whenthen.values import render, to_json

UTC = dt.UTC

SCHEMA = """
trigger guest.added {
  id: str
  first_name: str
  email: str
  category: 'VIP' | 'Visitor' | 'Press'
  company: str?
  age: int?
  score: float?
  tags: list[str]
  registered_at: datetime?
  birthday: date?
  payload: json?
  address: { city: str, zip: str? }?
}
trigger email.opened { guest_id: str, campaign: str }
trigger ping.sent { n: int }
action record(value: json?)
action set_status(guest_id: str, status: str)
action create_form(template: str) -> { id: str, url: str }
"""

GUEST = {
    "id": "g1", "first_name": "John", "email": "john@example.io", "category": "VIP", "company": None,
    "age": 30, "score": 12.5, "tags": ["a", "b"], "registered_at": dt.datetime(2026, 11, 1, 9, 0, tzinfo=UTC),
    "birthday": dt.date(1990, 5, 17), "payload": None, "address": None,
}


def rule(body: str, where: str = "", header: str = "") -> RuleCode:
    where_clause = f"where {where}" if where else ""
    return only_rule(f'{SCHEMA}\n{header}\nrule "R" when guest.added {where_clause}\nthen\n{body}\nend\n')


def value_of(expr: str, **event_changes) -> object:
    """Run `record(value: EXPR)` and return what the action received (as JSON)."""
    host = RecordingHost()
    result, _ = run_all(rule(f"  record(value: {expr})"), {**GUEST, **event_changes}, host)
    assert result == Done(), result
    return actions(host)[0][1]["value"]


@pytest.mark.parametrize(
    ("expr", "changes", "expected"),
    [
        # null semantics of SPEC 2.4
        ("company != 'Eventmaker'", {}, True),
        ("company = null", {}, True),
        ("company = 'x'", {}, False),
        ("age > 18", {"age": None}, False),
        ("not (age <= 18)", {"age": None}, True),
        ("age * 2", {"age": None}, None),
        ("-age", {"age": None}, None),
        ("company contains 'x'", {}, False),
        ("company starts with 'A'", {}, False),
        ("company ends with 'A'", {}, False),
        ("company matches 'A'", {}, False),
        ("company in ['a']", {}, False),
        ("company not in ['a']", {}, False),
        ("address.city", {}, None),
        ("address.city", {"address": {"city": "Paris", "zip": None}}, "Paris"),
        ("company is null", {}, True),
        ("company is not null", {}, False),
        ("tags is empty", {"tags": []}, True),
        ("company is empty", {}, True),
        ("first_name is not empty", {}, True),
        ("company is null or company starts with 'A'", {}, True),
        ("company is not null and company starts with 'A'", {}, False),
        # arithmetic and int/float mixing
        ("age + 1.5", {}, 31.5),
        ("age * 2", {}, 60),
        ("7 / 2", {}, 3.5),
        ("age % 7", {}, 2),
        ("score > 12", {}, True),
        ("age = 30.0", {}, True),
        # strings and lists
        ("tags contains 'a'", {}, True),
        ("'c' in tags", {}, False),
        ("'c' not in tags", {}, True),
        ("first_name starts with 'Jo'", {}, True),
        ("email ends with '.io'", {}, True),
        ("email matches '^[a-z]+@'", {}, True),
        ("first_name contains 'oh'", {}, True),
        ("category in ['VIP', 'Press']", {}, True),
        ("len(tags)", {}, 2),
        ("len(company)", {}, 0),
        ("coalesce(company, 'none')", {}, "none"),
        ("upper(company)", {}, None),
        ("lower(first_name)", {}, "john"),
        # time arithmetic
        ("registered_at + 1d", {}, "2026-11-02T09:00:00Z"),
        ("registered_at - 2026-11-01T00:00:00Z", {}, 32400),
        ("birthday + 36h", {}, "1990-05-18"),
        ("birthday - 1d", {}, "1990-05-16"),
        ("2 * 1h30m", {}, 10800),
        ("1h + 30m", {}, 5400),
        ("registered_at > 2026-10-01T00:00", {}, True),
        ("registered_at + 1h", {"registered_at": None}, None),
        # templates (SPEC 2.6)
        ('"{first_name} {age} {score} {company}|"', {}, "John 30 12.5 |"),
        ('"{registered_at} {birthday} {tags} {true}"', {}, "2026-11-01T09:00:00Z 1990-05-17 a, b true"),
        ('"{1h30m} {2d} {age * 1.0} {{literal}}"', {}, "1h30m 2d 30.0 {literal}"),
        ('"{first_name}"', {"first_name": "{age}"}, "{age}"),  # inserted values are never evaluated
    ],
)
def test_expressions(expr: str, changes: dict, expected: object) -> None:
    assert value_of(expr, **changes) == expected


def test_template_renders_datetimes_in_the_file_time_zone() -> None:
    code = only_rule(f'timezone "Europe/Paris"\n{SCHEMA}\nrule "R" when guest.added then\n'
                     '  record(value: "{registered_at}")\nend\n')
    host = RecordingHost()
    run_all(code, GUEST, host)
    assert actions(host)[0][1]["value"] == "2026-11-01T10:00:00+01:00"


def test_action_arguments_are_only_those_given_by_name_with_a_stable_step() -> None:
    code = rule("  send_email(to: email, subject: 'Hi')\n  wait 1h\n  send_email(email, 'Again')")
    host = RecordingHost()
    result, frame = run_all(code, GUEST, host, snapshot=True)
    assert result == Done()
    assert actions(host) == [
        ("send_email", {"to": "john@example.io", "subject": "Hi"}, 0, "2026-11-22T10:00:00Z"),
        ("send_email", {"to": "john@example.io", "subject": "Again"}, 1, "2026-11-22T11:00:00Z"),
    ]
    assert frame.step == 2


def test_let_binds_action_results_and_values() -> None:
    code = rule("  let form = create_form(template: 'intake')\n  let n = age + 1\n"
                "  record(value: \"{form.url} {n}\")")
    host = RecordingHost(results={"create_form": {"id": "f1", "url": "https://f/1"}})
    run_all(code, GUEST, host)
    assert actions(host)[1][1] == {"value": "https://f/1 31"}


def test_if_elif_else_and_branch_steps() -> None:
    code = rule("  if age < 18 then\n    record(value: 'minor')\n  elif age < 65 then\n"
                "    record(value: 'adult')\n  else\n    record(value: 'senior')\n  end")
    for age, want, branch in [(10, "minor", "then"), (30, "adult", "elif 1"), (70, "senior", "else"),
                              (None, "senior", "else")]:
        host = RecordingHost()
        run_all(code, {**GUEST, "age": age}, host)
        assert actions(host)[0][1] == {"value": want}
        steps = [e[1] for e in host.trace if e[0] == "step"]
        assert steps == [{"kind": "branch", "line": steps[0]["line"], "branch": branch}]


def test_if_without_else_records_no_branch() -> None:
    host = RecordingHost()
    run_all(rule("  if age > 100 then\n    record(value: 1)\n  end"), GUEST, host)
    assert actions(host) == []
    assert host.trace[0][1]["branch"] == "none"


def test_switch_with_subject_takes_the_first_matching_case() -> None:
    code = rule("  switch category\n  case 'VIP', 'Press' then record(value: 1)\n"
                "  case 'VIP' then record(value: 2)\n  else record(value: 3)\n  end\n  record(value: 'after')")
    for category, want in [("VIP", 1), ("Press", 1), ("Visitor", 3)]:
        host = RecordingHost()
        run_all(code, {**GUEST, "category": category}, host)
        assert [a[1]["value"] for a in actions(host)] == [want, "after"]


def test_switch_subject_compares_with_equality_semantics_including_null() -> None:
    code = rule("  switch company\n  case null then record(value: 'none')\n  case 'A' then record(value: 'a')\n  end")
    for company, want in [(None, ["none"]), ("A", ["a"]), ("B", [])]:
        host = RecordingHost()
        run_all(code, {**GUEST, "company": company}, host)
        assert [a[1]["value"] for a in actions(host)] == want


def test_switch_without_subject_uses_conditions() -> None:
    code = rule("  switch\n  case age >= 65 then record(value: 'senior')\n"
                "  case age >= 18 then record(value: 'adult')\n  end")
    for age, want in [(70, ["senior"]), (30, ["adult"]), (None, []), (3, [])]:
        host = RecordingHost()
        run_all(code, {**GUEST, "age": age}, host)
        assert [a[1]["value"] for a in actions(host)] == want


def test_wait_suspends_with_a_deadline_and_resumes() -> None:
    code = rule("  wait 2d\n  record(value: 1)")
    host = RecordingHost()
    frame = start_frame(code, GUEST)
    result = run(code, frame, host)
    assert result == Suspended(T0 + dt.timedelta(days=2))
    assert actions(host) == []
    host.clock = T0 + dt.timedelta(days=2)
    assert run(code, Frame.decode(frame.encode()), host) == Done()
    assert actions(host)[0][1] == {"value": 1}


def test_wait_until_past_continues_at_once_and_naive_literals_use_the_file_zone() -> None:
    past = rule("  wait until 2020-01-01T00:00\n  record(value: 1)")
    host = RecordingHost()
    assert run(past, start_frame(past, GUEST), host) == Done()
    paris = only_rule(f'timezone "Europe/Paris"\n{SCHEMA}\nrule "R" when guest.added then\n'
                      "  wait until 2026-12-01T09:00\nend\n")
    result = run(paris, start_frame(paris, GUEST), RecordingHost())
    assert result == Suspended(dt.datetime(2026, 12, 1, 8, 0, tzinfo=UTC))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("  wait registered_at - registered_at + age * 1h", "wait needs a duration, got null"),
        ("  wait until registered_at", "wait until needs a datetime, got null"),
        ("  wait for email.opened within age * 1h", "within needs a duration, got null"),
    ],
)
def test_waits_given_null_fail_clearly(body: str, message: str) -> None:
    event = {**GUEST, "age": None, "registered_at": None}
    host = RecordingHost()
    result, _ = run_all(rule(body), event, host)
    assert isinstance(result, Failed)
    assert message in result.error
    assert result.line > 0 and result.column > 0
    assert host.trace[-1][1]["kind"] == "error"


def test_wait_for_correlates_matches_and_resumes_with_the_event_or_null() -> None:
    code = rule("  let opened = wait for email.opened where guest_id = guest.id and campaign != 'x' within 1d\n"
                "  if opened is null then\n    record(value: 'timeout')\n  else\n"
                "    record(value: opened.campaign)\n  end")
    host = RecordingHost()
    frame = start_frame(code, GUEST)
    result = run(code, frame, host)
    assert result == Suspended(T0 + dt.timedelta(days=1), "email.opened", (("guest_id", "g1"),))
    frame = Frame.decode(frame.encode())
    assert wait_matches(code, frame, {"guest_id": "g1", "campaign": "spring"})
    assert not wait_matches(code, frame, {"guest_id": "g2", "campaign": "spring"})
    assert not wait_matches(code, frame, {"guest_id": "g1", "campaign": "x"})
    assert run(code, frame, host, {"guest_id": "g1", "campaign": "spring"}) == Done()
    assert actions(host)[-1][1] == {"value": "spring"}

    host = RecordingHost()
    result, _ = run_all(code, GUEST, host, replies=[None])
    assert actions(host)[-1][1] == {"value": "timeout"}


def test_wait_for_where_may_read_let_variables() -> None:
    code = rule("  let c = 'spring'\n  wait for email.opened where campaign = c\n  record(value: 'done')")
    host = RecordingHost()
    frame = start_frame(code, GUEST)
    result = run(code, frame, host)
    assert result == Suspended(None, "email.opened", (("campaign", "spring"),))
    assert wait_matches(code, frame, {"guest_id": "z", "campaign": "spring"})
    assert not wait_matches(code, frame, {"guest_id": "z", "campaign": "fall"})


def test_emit_passes_depth_and_fails_beyond_32() -> None:
    codes = compile_text(SCHEMA + 'rule "P" when ping.sent then\n  emit ping.sent(n: n + 1)\n  record(value: n)\nend\n')
    code = codes["P"]
    host = RecordingHost()
    result, _ = run_all(code, {"n": 1}, host, depth=3)
    assert result == Done()
    assert ("emitted", "ping.sent", {"n": 2}, 4) in host.trace
    assert any(e[0] == "step" and e[1]["kind"] == "emit" for e in host.trace)
    host = RecordingHost()
    result, _ = run_all(code, {"n": 1}, host, depth=32)
    assert isinstance(result, Failed) and "emit depth exceeded" in result.error
    assert result.line == code.first_line + 1
    assert actions(host) == []


def test_stop_ends_the_run() -> None:
    host = RecordingHost()
    result, _ = run_all(rule("  record(value: 1)\n  if age > 1 then\n    stop\n  end\n  record(value: 2)"), GUEST, host)
    assert result == Done()
    assert [a[1]["value"] for a in actions(host)] == [1]


def test_runtime_errors_fail_with_position_never_raise() -> None:
    code = rule("  record(value: 1)\n  record(value: age / 0)")
    result, _ = run_all(code, GUEST, RecordingHost())
    line = code.first_line + [i for i, text in enumerate(code.source.splitlines()) if "age / 0" in text][0]
    assert result == Failed("division by zero", line, 17)
    result, _ = run_all(rule("  record(value: payload.x)"), {**GUEST, "payload": "text"}, RecordingHost())
    assert isinstance(result, Failed) and "cannot read field 'x' of str" in result.error
    result, _ = run_all(rule("  record(value: payload > 1)"), {**GUEST, "payload": "text"}, RecordingHost())
    assert isinstance(result, Failed) and "cannot apply '>' to str and int" in result.error


def test_action_failure_fails_the_run() -> None:
    host = RecordingHost(failing={"record"})
    result, _ = run_all(rule("  record(value: 1)"), GUEST, host)
    assert isinstance(result, Failed) and result.error == "action record failed: boom"


def test_step_budget_fails_cleanly() -> None:
    code = rule("\n".join(f"  record(value: {i})" for i in range(30)))
    result = run(code, start_frame(code, GUEST), RecordingHost(), budget=50)
    assert isinstance(result, Failed) and "step budget exceeded" in result.error


def test_filters_exits_and_their_correlation() -> None:
    codes = compile_text(SCHEMA + 'rule "R" when guest.added where category = \'VIP\' and age >= 18\n'
                         "exit when email.opened where guest_id = guest.id and campaign = 'stop'\n"
                         "exit when ping.sent\nthen\n  wait 1d\nend\n")
    code = codes["R"]
    assert eval_filter(code, GUEST)
    assert not eval_filter(code, {**GUEST, "age": None})
    assert not eval_filter(code, {**GUEST, "age": "x"})  # a type surprise counts as false
    failure = filter_error(code, {**GUEST, "age": "x"})
    assert failure is not None and "cannot apply '>=' to str and int" in failure.error and failure.line > 0
    assert filter_error(code, GUEST) is None
    assert exit_correlation(code, 0, GUEST) == (("guest_id", "g1"), ("campaign", "stop"))
    assert exit_matches(code, 0, GUEST, {"guest_id": "g1", "campaign": "stop"})
    assert not exit_matches(code, 0, GUEST, {"guest_id": "g1", "campaign": "go"})
    assert exit_matches(code, 1, GUEST, {"n": 1})
    assert exit_correlation(code, 1, GUEST) == ()


def test_frame_round_trip_and_corrupt_snapshot() -> None:
    frame = Frame(event=dict(GUEST), pc=3, stack=[dt.timedelta(hours=1), None, [1, "a"]],
                  locals={"d": dt.date(2026, 1, 2), "when": T0}, depth=2, step=5,
                  pending={"kind": "wait", "deadline": T0, "trigger": None, "where": -1, "correlation": []})
    assert Frame.decode(frame.encode()) == frame
    with pytest.raises(BytecodeError):
        Frame.decode(b"\x93garbage")
    with pytest.raises(BytecodeError):
        Frame.decode(frame.encode()[:-3])


# ----------------------------------------------------------------------------- snapshot = uninterrupted


def _statements(depth: int) -> st.SearchStrategy[str]:
    simple = st.sampled_from([
        "record(value: \"{first_name} {age}\")",
        "record(value: age * 2)",
        "wait 1h",
        "wait 2d",
        "wait until registered_at + 3d",
        "wait for email.opened where guest_id = guest.id within 1h",
        "wait for email.opened where campaign = guest.first_name",
        "send_email(to: email, subject: \"at {now()}\")",
        "emit ping.sent(n: len(tags))",
    ])
    if depth == 0:
        return simple
    block = st.lists(_statements(depth - 1), min_size=0, max_size=3).map("\n".join)
    return st.one_of(
        simple,
        st.tuples(st.sampled_from(["age > 20", "company is null", "tags contains 'a'"]), block, block).map(
            lambda t: f"if {t[0]} then\n{t[1]}\nelse\n{t[2]}\nend"),
        st.tuples(block, block).map(lambda t: f"switch category\ncase 'VIP', 'Press' then\n{t[0]}\nelse\n{t[1]}\nend"),
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=st.lists(_statements(2), min_size=1, max_size=6).map("\n".join),
    age=st.one_of(st.none(), st.integers(0, 90)),
    company=st.one_of(st.none(), st.just("Acme")),
    replies=st.lists(st.one_of(st.none(), st.just({"guest_id": "g1", "campaign": "c"})), max_size=6),
)
def test_snapshot_and_resume_gives_the_uninterrupted_trace(body, age, company, replies) -> None:
    code = rule(body)
    event = {**GUEST, "age": age, "company": company}
    plain, snap = RecordingHost(), RecordingHost()
    result_plain, frame_plain = run_all(code, dict(event), plain, replies=list(replies))
    result_snap, frame_snap = run_all(code, dict(event), snap, replies=list(replies), snapshot=True)
    assert result_plain == result_snap
    assert plain.trace == snap.trace
    assert frame_plain.step == frame_snap.step


def test_template_output_is_limited() -> None:
    code = rule('  record(value: "{first_name}{first_name}")')
    result, _ = run_all(code, {**GUEST, "first_name": "x" * 600_000}, RecordingHost())
    assert isinstance(result, Failed) and "template output too long" in result.error


class CrashingHost(RecordingHost):
    """Crashes (HostAbort) right after the n-th action call of the whole test, for each n in crashes."""

    def __init__(self, crashes: set[int]):
        super().__init__()
        self.crashes = crashes
        self.calls = 0

    def call_action(self, name, args, step):
        result = super().call_action(name, args, step)
        self.calls += 1
        if self.calls in self.crashes:
            raise HostAbort()
        return result


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=st.lists(_statements(1), min_size=1, max_size=6).map("\n".join),
    crashes=st.sets(st.integers(1, 12), max_size=4),
)
def test_crash_and_resume_from_the_last_snapshot_reuses_step_numbers(body, crashes) -> None:
    code = rule(body)
    plain = RecordingHost()
    run_all(code, dict(GUEST), plain)
    host = CrashingHost(crashes)
    snapshot = start_frame(code, dict(GUEST)).encode()
    resume = None
    while True:
        frame = Frame.decode(snapshot)
        try:
            result = run(code, frame, host, resume)
        except HostAbort:
            continue  # the worker died: start again from the last committed snapshot
        if not isinstance(result, Suspended):
            break
        snapshot = frame.encode()
        resume = None
        host.clock = result.deadline or host.clock
    by_step = {}
    for name, args, step, _ in actions(host):
        assert by_step.setdefault(step, (name, args)) == (name, args)  # same step, same action
    assert [(n, a, s) for n, a, s, _ in actions(plain)] == [(n, a, s) for s, (n, a) in sorted(by_step.items())]


def test_action_results_are_normalised_or_fail_clearly() -> None:
    code = rule("  let form = create_form(template: 'x')\n  wait 1h\n  record(value: form.id)")
    host = RecordingHost(results={"create_form": {"id": ("a", 1), "url": "u"}})
    result, frame = run_all(code, GUEST, host, snapshot=True)
    assert result == Done() and actions(host)[-1][1] == {"value": ["a", 1]}
    host = RecordingHost(results={"create_form": object()})
    result, _ = run_all(code, GUEST, host)
    assert isinstance(result, Failed) and "create_form returned an unusable result" in result.error


@pytest.mark.parametrize(
    ("value", "timezone", "text"),
    [
        (dt.timedelta(0), None, "0s"),
        (dt.timedelta(hours=1, minutes=30), None, "1h30m"),
        (dt.timedelta(days=8, seconds=5), None, "1w1d5s"),
        (dt.timedelta(minutes=-15), None, "-15m"),
        (dt.timedelta(seconds=1, milliseconds=500), None, "1.5s"),
        (80, None, "80"), (80.0, None, "80.0"), (12.5, None, "12.5"), (False, None, "false"),
        (None, None, ""), ([1, None, "x", [2.0]], None, "1, , x, 2.0"),
        (dt.date(2026, 12, 1), "Europe/Paris", "2026-12-01"),
        (dt.datetime(2026, 7, 1, 7, 0, tzinfo=UTC), "Europe/Paris", "2026-07-01T09:00:00+02:00"),
        (dt.datetime(2026, 7, 1, 7, 0, 0, 250000, tzinfo=UTC), None, "2026-07-01T07:00:00.25Z"),
        (dt.datetime(2026, 1, 1, 7, 0, tzinfo=UTC), "Europe/London", "2026-01-01T07:00:00+00:00"),
        ({"a": dt.timedelta(hours=1)}, None, '{"a": 3600}'),
    ],
)
def test_template_rendering_of_values(value, timezone, text) -> None:
    assert render(value, timezone) == text


def test_json_for_traces() -> None:
    assert to_json({"at": dt.datetime(2026, 1, 1, 10, tzinfo=dt.timezone(dt.timedelta(hours=1))),
                    "d": dt.timedelta(seconds=90), "half": dt.timedelta(milliseconds=500),
                    "day": dt.date(2026, 1, 2), "l": (1, "a")}) == {
        "at": "2026-01-01T09:00:00Z", "d": 90, "half": 0.5, "day": "2026-01-02", "l": [1, "a"]}
