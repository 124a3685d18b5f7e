"""Helpers for the code generator, VM and fast-path tests: compile rules text, a recording host."""

from __future__ import annotations

import datetime as dt
from typing import Any

from whenthen.compiler.checker import check_program
from whenthen.compiler.code import RuleCode
from whenthen.compiler.codegen import compile_rules
from whenthen.diagnostics import render_all
from whenthen.runtime.vm import Done, Failed, Frame, Suspended, run, start_frame
from whenthen.source import Source
from whenthen.values import to_json

UTC = dt.UTC
T0 = dt.datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def compile_text(text: str, name: str = "test.rules") -> dict[str, RuleCode]:
    """Check and compile rules text; fail the test with rendered diagnostics on errors."""
    program = check_program([Source(name, text)])
    assert program.ok, render_all(program.diagnostics, {name: text})
    return compile_rules(program)


def only_rule(text: str) -> RuleCode:
    rules = compile_text(text)
    assert len(rules) == 1
    return next(iter(rules.values()))


class RecordingHost:
    """A host that records everything the VM asks of it, on a clock the test moves."""

    def __init__(self, now: dt.datetime = T0, results: dict[str, Any] | None = None,
                 failing: set[str] | None = None):
        self.clock = now
        self.results = results or {}
        self.failing = failing or set()
        self.trace: list[tuple[Any, ...]] = []

    def now(self) -> dt.datetime:
        return self.clock

    def call_action(self, name: str, args: dict[str, Any], step: int) -> Any:
        self.trace.append(("action", name, to_json(args), step, to_json(self.clock)))
        if name in self.failing:
            raise RuntimeError("boom")
        return self.results.get(name)

    def emit(self, trigger: str, data: dict[str, Any], depth: int) -> None:
        self.trace.append(("emitted", trigger, to_json(data), depth))

    def on_step(self, step: dict[str, Any]) -> None:
        self.trace.append(("step", step))


def run_all(code: RuleCode, event: dict[str, Any], host: RecordingHost, replies: list[Any] | None = None,
            snapshot: bool = False, depth: int = 0) -> tuple[Any, Frame]:
    """Run a rule to its end, resuming each wait at its deadline (a `wait for` with the next of
    `replies`). With `snapshot`, the frame goes through encode/decode at every wait."""
    replies = list(replies or [])
    frame = start_frame(code, event, depth)
    result = run(code, frame, host)
    while isinstance(result, Suspended):
        if snapshot:
            frame = Frame.decode(frame.encode())
            code = RuleCode.decode(code.encode())
        resume = None
        if result.wait_trigger is not None:
            resume = replies.pop(0) if replies else None
            if resume is None and result.deadline is not None:
                host.clock = result.deadline
        elif result.deadline is not None:
            host.clock = result.deadline
        result = run(code, frame, host, resume)
    assert isinstance(result, (Done, Failed))
    return result, frame


def actions(host: RecordingHost) -> list[tuple[Any, ...]]:
    return [entry[1:] for entry in host.trace if entry[0] == "action"]
