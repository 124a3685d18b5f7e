"""Loops (SPEC 2.5): `repeat N times`, `for NAME in LIST`, `break` — checking, bytecode and runs."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _vm_support import RecordingHost, actions, only_rule, run_all
from whenthen.compiler.checker import check_program
from whenthen.compiler.dis import disassemble
from whenthen.runtime.vm import Done, Failed
from whenthen.source import Source

SCHEMA = "trigger cart.left { customer_id: str, items: list[str], times: int, n: int? }\n" \
         "trigger order.placed { customer_id: str }\n"
EVENT = {"customer_id": "c1", "items": ["a", "b", "c"], "times": 2, "n": None}


def rule(body: str) -> str:
    return SCHEMA + 'rule "r" when cart.left then\n' + body + "\nend\n"


def diagnostics(body: str) -> list[tuple[str, str]]:
    program = check_program([Source("t.rules", rule(body))])
    return [(d.code, d.message) for d in program.diagnostics]


def calls(body: str, event: dict | None = None, replies: list | None = None, snapshot: bool = False):
    host = RecordingHost()
    result, _ = run_all(only_rule(rule(body)), dict(event or EVENT), host, replies, snapshot=snapshot)
    return result, actions(host)


def messages(found) -> list[str]:
    return [args["message"] for name, args, *_ in found if name == "log"]


def test_for_repeat_and_break_run_in_order() -> None:
    result, found = calls(
        "for it in items\n  if it = 'c' then break end\n  log(message: \"item {it}\")\nend\n"
        "repeat times times\n  log(message: 'y')\nend\n"
        "repeat 2 times; for x in ['p', 'q']; log(message: x); break; end; end"
    )
    assert isinstance(result, Done)
    assert messages(found) == ["item a", "item b", "y", "y", "p", "p"]


def test_null_and_negative_counts_and_null_lists_run_no_iteration() -> None:
    result, found = calls("repeat n times; log(message: 'x'); end\nrepeat -3 times; log(message: 'y'); end\n"
                          "log(message: 'after')")
    assert isinstance(result, Done) and messages(found) == ["after"]


def test_loop_limit_fails_the_run_cleanly() -> None:
    result, found = calls("repeat times times; log(message: 'x'); end", {**EVENT, "times": 10_001})
    assert isinstance(result, Failed) and "loop limit exceeded" in result.error and found == []
    result, _ = calls("for it in items; log(message: it); end", {**EVENT, "items": ["x"] * 10_001})
    assert isinstance(result, Failed) and "loop limit exceeded" in result.error


def test_a_full_loop_of_10_000_iterations_fits_the_step_budget() -> None:
    # a realistic body (a template, arithmetic, a condition, an action) on every allowed iteration
    body = ("for it in items\n  let label = \"{it} for {customer_id}\"\n  let size = len(label) + len(it) * 2\n"
            "  if size > 1000 then break end\n  log(message: label)\nend")
    result, found = calls(body, {**EVENT, "items": [f"i{n}" for n in range(10_000)]})
    assert isinstance(result, Done), result
    assert len(found) == 10_000 and messages(found)[-1] == "i9999 for c1"


def test_nested_loops_that_never_wait_hit_the_step_budget() -> None:
    result, _ = calls("repeat 10000 times; repeat 10000 times; let y = 1; end; end")
    assert isinstance(result, Failed) and "step budget exceeded" in result.error


def test_loops_compile_to_jumps() -> None:
    text = disassemble(only_rule(rule("for it in items; log(message: it); end")))
    assert "LOOP_LIST" in text and "FOR_ITER" in text and "JUMP" in text


def test_a_wait_inside_a_loop_resumes_in_the_same_iteration_with_the_same_item() -> None:
    body = ("repeat 3 times\n  send_email(to: customer_id, subject: 'cart')\n"
            "  let o = wait for order.placed where customer_id = cart.customer_id within 2d\n"
            "  if o is not null then break end\nend\n"
            "for it in items\n  wait 1h\n  log(message: it)\nend")
    for snapshot in (False, True):
        result, found = calls(body, replies=[None, {"customer_id": "c1"}], snapshot=snapshot)
        assert isinstance(result, Done)
        assert [name for name, *_ in found] == ["send_email", "send_email", "log", "log", "log"]
        assert messages(found) == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("body", "code", "fragment"),
    [
        ("break", "E001", "outside"),
        ("if true then break end", "E001", "outside"),
        ("repeat 'x' times; end", "E103", "int count"),
        ("for x in customer_id; end", "E103", "needs a list"),
        ("for customer_id in items; end", "E111", "customer_id"),
        ("let x = 1\nfor x in items; end", "E111", "x"),
        ("for it in items; log(message: it + 1); end", "E103", ""),
        ("for it in items; break; log(message: it); end", "W201", ""),
    ],
)
def test_errors(body: str, code: str, fragment: str) -> None:
    found = diagnostics(body)
    assert any(c == code and fragment in m for c, m in found), found


def test_loop_words_are_contextual() -> None:
    # a field `times`, an action `repeat` and a `let break` still work
    text = ("trigger t.x { times: int, repeat: int }\naction repeat(times: int)\n"
            "rule \"r\" when t.x then\n  repeat(times: times)\n  let break = repeat + times\n"
            "  repeat times times\n    repeat(times: break)\n  end\nend\n")
    program = check_program([Source("t.rules", text)])
    assert program.ok, program.diagnostics
    assert diagnostics("for it in items\nend\nlet n2 = len(items)") == []


_items = st.lists(st.sampled_from(["a", "b", "stop", "c"]), max_size=6)


@settings(max_examples=30, deadline=None)
@given(items=_items, count=st.integers(-1, 4), waits=st.booleans())
def test_a_loop_traces_exactly_as_the_program_written_out(items: list[str], count: int, waits: bool) -> None:
    wait = "  wait 1h\n" if waits else ""
    looped = (f"for it in items\n{wait}  if it = 'stop' then break end\n  log(message: \"item {{it}}\")\nend\n"
              f"repeat {count} times\n{wait}  log(message: 'r')\nend")
    unrolled: list[str] = []
    for it in items:
        unrolled += [wait.strip()] if waits else []
        if it == "stop":
            break
        unrolled.append(f"log(message: \"item {it}\")")
    for _ in range(max(count, 0)):
        unrolled += [wait.strip()] if waits else []
        unrolled.append("log(message: 'r')")
    event = {**EVENT, "items": items}
    for snapshot in (False, True):  # snapshot/resume through encode/decode at every wait
        looped_result, looped_calls = calls(looped, event, snapshot=snapshot)
        plain_result, plain_calls = calls("\n".join(unrolled), event)
        assert isinstance(looped_result, Done) and isinstance(plain_result, Done)
        assert looped_calls == plain_calls


def test_a_run_killed_inside_a_loop_resumes_in_the_right_iteration(tmp_path) -> None:
    """A worker SIGKILLed while its runs wait inside a `for`: a new worker carries on with the
    next item, and no iteration's action runs twice or is skipped."""
    import signal
    import time

    from test_workers import action_log, run_statuses, setup_db, start_worker, wait_until_done

    rules = ("trigger job.created { id: str }\n"
             "rule \"Job\" when job.created then\n"
             "  for s in [1, 2, 3]\n    work(id: id, step: s)\n    wait 1s\n  end\nend\n")
    db = setup_db(tmp_path, str(tmp_path / "wt.db"), rules, jobs=3)
    first = start_worker(tmp_path, db, lease=1.0)
    try:
        deadline = time.time() + 30
        while time.time() < deadline and len({j for j, s, _ in action_log(tmp_path) if s == 1}) < 3:
            time.sleep(0.05)
        time.sleep(0.2)  # the first iteration's action is journalled; the runs wait inside the loop
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        assert run_statuses(db).get("completed", 0) == 0
        second = start_worker(tmp_path, db, lease=1.0)
        try:
            wait_until_done(db, 3, timeout=60)
        finally:
            second.send_signal(signal.SIGKILL)
            second.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
    steps: dict[str, list[int]] = {}
    for job, step, _ in action_log(tmp_path):
        steps.setdefault(job, []).append(step)
    assert steps == {f"j{i}": [1, 2, 3] for i in range(3)}


def test_the_repl_waits_for_the_end_of_a_rule_holding_loops() -> None:
    from whenthen.repl.session import is_complete

    head = 'rule "r" when a.b then\n  for x in xs\n    log(message: x)\n  end\n'
    assert not is_complete(head)
    assert is_complete(head + "end\n")
    waiting = 'rule "r" when a.b then\n  let e = wait for a.b within 1h\n  repeat 2 times\n    stop\n  end\n'
    assert not is_complete(waiting)
    assert is_complete(waiting + "end\n")
