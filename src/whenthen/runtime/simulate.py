"""`simulate`: play a file of events through the engine on an in-memory database and a simulated clock.

The dispatch logic is the Engine's own; this module only reads the events file, moves the clock
(due waits and timeouts first, then schedules, then the file's events) and collects the trace.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from whenthen.calendar import from_epoch
from whenthen.diagnostics import Diagnostic, EventError
from whenthen.runtime.clock import SimulatedClock
from whenthen.runtime.engine import Engine
from whenthen.runtime.events import parse_event_line
from whenthen.runtime.jsonl import decode_line, read_file_lines
from whenthen.values import format_datetime

MAX_RESUMES_WITHOUT_UNTIL = 100_000  # a self-feeding chain of waits would otherwise never end
SUMMARY_KEYS = ("runs", "filtered", "completed", "waiting", "failed", "exited")


@dataclass
class EventLine:
    """One line of the events file; `error` is set (and the rest empty) when it cannot be read."""

    line: int
    trigger: str = ""
    at: dt.datetime | None = None
    data: Any = None
    error: str | None = None


@dataclass
class SimulationResult:
    """What a simulation produced: diagnostics (if the program did not check), the trace, the
    per-rule summary and the invalid event lines (`FILE:LINE: error: …`)."""

    diagnostics: list[Diagnostic] = field(default_factory=list)
    trace: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, dict[str, int]] = field(default_factory=dict)
    event_errors: list[str] = field(default_factory=list)
    truncated: bool = False

    @property
    def ok(self) -> bool:
        return not any(d.is_error for d in self.diagnostics) and not self.event_errors


def read_events(path: str | Path) -> list[EventLine]:
    """The lines of a JSONL events file, in order; unreadable ones carry `FILE:LINE: error: …`.

    Each line is decoded on its own (a byte that is not UTF-8 spoils that line, not the file),
    and a line whose `at` is earlier than the previous line's is invalid (SPEC 5)."""
    events = []
    previous: dt.datetime | None = None
    for number, raw in enumerate(read_file_lines(path), 1):
        if not raw.strip():
            continue
        try:
            trigger, at, data = parse_event_line(decode_line(raw))
            if at is not None and previous is not None and at < previous:
                raise EventError(f"{trigger}: 'at' {format_datetime(at)} is earlier than the previous line's "
                                 f"({format_datetime(previous)}); events are played in file order")
        except EventError as exc:
            events.append(EventLine(number, error=f"{path}:{number}: error: {exc}"))
            continue
        previous = at or previous
        events.append(EventLine(number, trigger, at, data))
    return events


def simulate(
    paths: Sequence[str | Path],
    events_path: str | Path,
    until: dt.datetime | None = None,
    actions: Sequence[Callable[..., Any]] = (),
    triggers: Mapping[str, Any] | None = None,
    on_trace: Callable[[dict[str, Any]], None] | None = None,
    on_event_error: Callable[[str], None] | None = None,
    db: str = ":memory:",
    dry_run: bool = True,
) -> SimulationResult:
    """Check the program, then play the events; every rule is active, actions are recorded (host
    `actions` supply results, others return null).

    With a `db` file and `dry_run=False` this is a replay into a durable database (`whenthen
    demo`): the rules are published there and actions really run (stdlib ones to the outbox)."""
    from whenthen.api import _check_program
    from whenthen.compiler.codegen import compile_rules

    result = SimulationResult()

    def trace(record: dict[str, Any]) -> None:
        result.trace.append(record)
        if on_trace is not None:
            on_trace(record)

    def event_error(message: str) -> None:
        result.event_errors.append(message)
        if on_event_error is not None:
            on_event_error(message)

    events = read_events(events_path)
    times = [e.at for e in events if e.at is not None]
    start = min(times) if times else (until or dt.datetime.now(dt.UTC))
    clock = SimulatedClock(start)
    engine = Engine(db, clock, dry_run=dry_run, on_trace=trace)
    try:
        for fn in actions:
            engine.action(fn)
        for name, model in (triggers or {}).items():  # host triggers (an `--actions` module's TRIGGERS)
            engine.trigger(name, model)
        checked = _check_program([str(p) for p in paths], engine.schema)
        result.diagnostics = list(checked.diagnostics)
        if not checked.ok:
            return result
        from whenthen.api import Program

        engine.publish(Program(checked, compile_rules(checked)), author="simulate", enable=True)

        resumes = 0

        def advance(to: dt.datetime) -> None:
            """Play the clock up to `to`, stopping at each due time: waits and timeouts first, then
            schedules."""
            nonlocal resumes
            while True:
                due = next_instant(engine)
                if due is None or due > to:
                    break
                clock.set(due)
                done = engine.run_due() + engine.fire_schedules(due)
                resumes += done
                if done == 0 or (until is None and resumes > MAX_RESUMES_WITHOUT_UNTIL):
                    result.truncated = done != 0
                    break
            clock.set(to)

        current = start
        for event in events:
            if event.error is not None:
                event_error(event.error)
                continue
            if event.at is not None and event.at > current:
                current = event.at
            advance(current)
            try:
                engine.emit(event.trigger, event.data)
            except EventError as exc:
                event_error(f"{events_path}:{event.line}: error: {exc}")
        if until is not None:
            advance(max(until, clock.now()))
        else:
            while not result.truncated:
                due = engine.store.next_deadline()
                if due is None:
                    break
                advance(max(from_epoch(due), clock.now()))
        result.summary = _summary(engine, [str(r["name"]) for r in engine.store.rules()])
        return result
    finally:
        engine.close()


def next_instant(engine: Engine) -> dt.datetime | None:
    """The next time something is due without an event: a wait's deadline or a schedule's slot."""
    deadline = engine.store.next_deadline()
    found = [from_epoch(deadline)] if deadline is not None else []
    slot = engine.next_schedule_slot()
    if slot is not None:
        found.append(slot)
    return min(found, default=None)


def _summary(engine: Engine, rules: list[str]) -> dict[str, dict[str, int]]:
    counts = engine.store.run_counts()
    filtered = engine.store.filtered_counts()
    policy = engine.store.policy_counts()
    versions = {str(r["name"]): int(r["version"]) for r in engine.store.rules()}
    summary = {}
    for rule in rules:
        by_status = counts.get(rule, {})
        row = {"runs": sum(by_status.values()), "filtered": filtered.get(rule, 0)}
        row.update({s: by_status.get(s, 0) for s in ("completed", "waiting", "failed", "exited")})
        if rule in versions:  # SPEC 2.10/2.11: only rules with a counting trigger or an entry limit
            engine.catalog.load(rule, versions[rule])
            row.update(engine.catalog.policy_view(rule, versions[rule], policy.get(rule, {})))
        summary[rule] = row
    return summary


# ----------------------------------------------------------------------------- output


def jsonl_line(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False)


def summary_record(summary: dict[str, dict[str, int]]) -> dict[str, Any]:
    return {"kind": "summary", "rules": summary}


def render_text(result: SimulationResult) -> str:
    """A timeline grouped by run, then the per-rule summary."""
    runs: dict[int, list[dict[str, Any]]] = {}
    rule_of: dict[int, str] = {}
    for record in result.trace:
        run = record.get("run")
        if run is None:
            continue
        runs.setdefault(run, []).append(record)
        rule_of[run] = record.get("rule", "?")
    lines = []
    for run, records in runs.items():
        lines.append(f"run {run} · {rule_of[run]}")
        for r in records:
            lines.append(f"  {r['at']}  {_describe(r)}")
        lines.append("")
    if not runs:
        lines.append("no runs")
        lines.append("")
    lines.append("summary")
    width = max((len(name) for name in result.summary), default=0)
    for name, row in result.summary.items():
        counts = ", ".join(f"{row[k]} {k}" for k in (*SUMMARY_KEYS, "counted", "limited") if k in row)
        lines.append(f"  {name.ljust(width)}  {counts}")
    return "\n".join(lines) + "\n"


def _describe(record: dict[str, Any]) -> str:
    kind = record["kind"]
    if kind == "action":
        args = ", ".join(f"{k}: {json.dumps(v, ensure_ascii=False)}" for k, v in record["args"].items())
        due = f"  (due {record['due_at']}, delayed by the sending window)" if record.get("due_at") else ""
        return f"{record['action']}({args}){due}"
    if kind == "emit":
        data = ", ".join(f"{k}: {json.dumps(v, ensure_ascii=False)}" for k, v in record["data"].items())
        return f"emit {record['trigger']}({data})"
    if kind == "branch":
        return f"split {record['split']} → case {record['case']} ({record['share']}%)"
    if kind == "run":
        status = record["status"]
        return f"→ {status}" + (f": {record['error']}" if record.get("error") else "")
    return json.dumps(record, ensure_ascii=False)


def format_time(value: dt.datetime) -> str:
    return format_datetime(value)
