"""The REPL's dry run: the engine on an in-memory database and a simulated clock, traces as text."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from whenthen.calendar import parse_datetime
from whenthen.compiler.checked import CheckedProgram
from whenthen.runtime.clock import SimulatedClock
from whenthen.runtime.evaluate import show_value

# A rule whose wait never becomes due must not make `:advance` loop for ever.
MAX_ROUNDS = 10_000


class ReplSimulation:
    """Every loaded rule active; actions recorded (null results); time moves only on `:advance`."""

    def __init__(self, start: dt.datetime, timezone: str = "UTC", actions: Sequence[Callable[..., Any]] = (),
                 triggers: Mapping[str, Any] | None = None):
        from whenthen.runtime.engine import Engine

        self.clock = SimulatedClock(start)
        self.timezone = timezone
        self._lines: list[str] = []
        self.engine = Engine(":memory:", clock=self.clock, dry_run=True, on_trace=self._on_trace)
        for fn in actions:
            self.engine.action(fn)  # host actions supply results; the others return null
        for name, model in (triggers or {}).items():
            self.engine.trigger(name, model)

    def now(self) -> dt.datetime:
        return self.clock.now()

    def publish(self, checked: CheckedProgram) -> None:
        """(Re)publish the program: changed rules get a new version; waiting runs keep theirs."""
        from whenthen.api import Program
        from whenthen.compiler.codegen import compile_rules

        self.engine.publish(Program(checked, compile_rules(checked)), author="repl", enable=True)

    def emit(self, trigger: str, data: Any) -> list[str]:
        """Dispatch one event now; the trace of what the rules did, or a note that none started."""
        self._lines = []
        self.engine.emit(trigger, data)
        return self._lines or [f"{self._time()}  {trigger}: no rule started"]

    def advance(self, delta: dt.timedelta) -> list[str]:
        """Move the clock forward, stopping at each due time in order, as simulate does: waits and
        timeouts first, then schedules."""
        from whenthen.runtime.simulate import next_instant

        self._lines = []
        target = self.clock.now() + delta
        for _ in range(MAX_ROUNDS):
            due = next_instant(self.engine)
            if due is None or due > target:
                break
            self.clock.set(due)
            if self.engine.run_due() + self.engine.fire_schedules(due) == 0:
                break
        self.clock.set(target)
        return self._lines + [f"now {self._time()}"]

    def runs(self) -> list[str]:
        lines = []
        for run in self.engine.runs():
            line = f"#{run['id']}  {run['rule']}  v{run['version']}  {run['status']}"
            if run.get("waiting_until"):
                line += f" until {self._show_time(run['waiting_until'])}"
            if run.get("waiting_for"):
                line += f" for {run['waiting_for']}"
            if run.get("error"):
                line += f"  ({run['error']})"
            lines.append(line)
        return lines

    # ------------------------------------------------------------------ traces

    def _on_trace(self, record: dict[str, Any]) -> None:
        head = f"{self._show_time(record['at'])}  {record['rule']} #{record['run']}  "
        kind = record["kind"]
        if kind == "action":
            args = ", ".join(f"{k}: {show_value(v)}" for k, v in record["args"].items())
            due = f"  (due {self._show_time(record['due_at'])}, delayed by the sending window)" if record.get("due_at") else ""
            self._lines.append(f"{head}{record['action']}({args}){due}")
        elif kind == "emit":
            fields = ", ".join(f"{k}: {show_value(v)}" for k, v in record["data"].items())
            self._lines.append(f"{head}emit {record['trigger']}({fields})")
        elif kind == "run":
            status = record["status"]
            if status == "waiting":
                status += self._waiting_detail(record["run"])
            if record.get("error"):
                status += f": {record['error']}"
            self._lines.append(f"{head}{status}")

    def _waiting_detail(self, run_id: int) -> str:
        for run in self.engine.runs():
            if run["id"] == run_id:
                until = f" until {self._show_time(run['waiting_until'])}" if run.get("waiting_until") else ""
                waiting_for = f" for {run['waiting_for']}" if run.get("waiting_for") else ""
                return waiting_for + until
        return ""

    def _show_time(self, text: str) -> str:
        return show_value(parse_datetime(text), self.timezone)

    def _time(self) -> str:
        return show_value(self.clock.now(), self.timezone)
