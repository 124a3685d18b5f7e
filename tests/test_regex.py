"""`matches` runs in linear time (RE2): same answer in the checker, the VM, the fast path and evaluate."""

from __future__ import annotations

import datetime as dt

import pytest

import whenthen.api as api
from _vm_support import only_rule
from whenthen.diagnostics import Diagnostic
from whenthen.regex import RegexError, compile_pattern, search
from whenthen.runtime.clock import SimulatedClock
from whenthen.runtime.engine import Engine
from whenthen.runtime.evaluate import evaluate_expression
from whenthen.runtime.fast import compile_filter, filter_source
from whenthen.runtime.vm import eval_filter

SCHEMA = "trigger msg.in { body: str }\n"

# Catastrophic for a backtracking engine: Python's `re` needs about 2^n steps on n `a`s then `b`
# (29 s at n = 28, doubling with each `a`); RE2 answers at once. At n = 5,000 a backtracking
# engine would not finish in the lifetime of the machine, so this test cannot pass by luck.
PATHOLOGICAL = [("(a+)+$", "a" * 5000 + "b", False), ("(a|aa)+$", "a" * 5000 + "!", False),
                ("(x+x+)+y", "x" * 5000, False), ("^(a+)+$", "a" * 5000, True)]


def check_codes(text: str) -> list[str]:
    try:
        diagnostics: list[Diagnostic] = list(api.compile(SCHEMA + text).diagnostics)
    except api.CompileError as exc:
        diagnostics = list(exc.diagnostics)
    return [d.code for d in diagnostics if d.severity == "error"]


@pytest.mark.parametrize(("pattern", "text", "expected"), PATHOLOGICAL)
def test_pathological_patterns_answer_in_the_vm_the_fast_path_and_evaluate(pattern, text, expected):
    code = only_rule(f"{SCHEMA}rule \"R\" when msg.in where body matches '{pattern}' then\nend\n")
    fast = compile_filter(code)
    assert "_matches" not in filter_source(code)[0]  # the fast path inlines the RE2 search
    assert eval_filter(code, {"body": text}) is expected
    assert fast({"body": text}) is expected
    schema = api.compile(SCHEMA).schema
    assert evaluate_expression(f"body matches '{pattern}'", "msg.in", {"body": text}, schema) is expected


def test_a_pathological_pattern_does_not_stall_emit(tmp_path):
    engine = Engine(tmp_path / "wt.db", SimulatedClock(dt.datetime(2026, 1, 1, tzinfo=dt.UTC)))
    engine.publish(api.compile(SCHEMA + "rule \"R\" when msg.in where body matches '(a+)+$' then\n"
                               "log(message: body)\nend\n", engine.schema), author="t", enable=True)
    engine.emit("msg.in", {"body": "a" * 10_000 + "b"})
    engine.emit("msg.in", {"body": "a" * 10_000})
    assert [r["status"] for r in engine.runs(rule="R")] == ["completed"]
    assert engine.rules()[0]["filtered"] == 1


@pytest.mark.parametrize(("pattern", "reason"), [
    (r"(a)\\1", "invalid escape sequence"),        # backreference: not linear-time
    ("a(?=b)", "invalid perl operator"),           # lookahead
    ("(?<!x)a", "invalid perl operator"),          # lookbehind
    ("a{1001}", "invalid repetition size"),
    ("([a-z", "missing"),
])
def test_patterns_re2_cannot_run_are_E108_with_the_reason(pattern, reason):
    text = f"rule \"R\" when msg.in where body matches '{pattern}' then\nend\n"
    assert check_codes(text) == ["E108"]
    with pytest.raises(RegexError, match=reason):
        compile_pattern(pattern.replace("\\\\", "\\"))


def test_rejected_patterns_print_nothing_on_stderr(capfd):
    with pytest.raises(RegexError):
        compile_pattern("(b)\\1")
    assert capfd.readouterr().err == ""


def test_ordinary_patterns_keep_their_meaning():
    assert search(r"^\d{5}$", "75011") and not search(r"^\d{5}$", "7501")
    assert search(r"(?i)^vip", "Vip guest")
    assert search(r"caf\x{e9}|café", "au café")
    assert search(r"^[^@]+@[^@]+\.[a-z]{2,}$", "jane@example.org")
    assert not search(r"^a$", "a\nb") and search(r"(?m)^b$", "a\nb")


def test_a_lone_surrogate_in_the_text_is_searched_not_a_crash():
    assert search("x", "\ud800x") and not search("^x", "\ud800x")
