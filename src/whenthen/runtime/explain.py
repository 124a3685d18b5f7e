"""Explain (SPEC 2.14): what a rule did with a stored event and why, and what a run is doing now."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from whenthen import values
from whenthen.calendar import SCHEDULE_TRIGGER, epoch, from_epoch, parse_datetime
from whenthen.compiler.code import RuleCode
from whenthen.compiler.decls import Schema, TriggerSchema
from whenthen.diagnostics import CompileError, EventError, WhenthenError
from whenthen.grammar import ast
from whenthen.runtime import policies, vm
from whenthen.runtime.activation import decode_frame
from whenthen.runtime.catalog import Catalog, LoadedRule
from whenthen.runtime.context import Context, EngineError
from whenthen.runtime.evaluate import format_explanation, prepare_expression, show_value, span_text
from whenthen.runtime.events import lookup_trigger, type_from_data, validate_event
from whenthen.runtime.history import run_view, step_view
from whenthen.values import format_datetime
from whenthen.views import describe_step

# An entry limit whose key was taken over by a later run: how many of the rule's older runs are
# read (newest first, by keyset) to find the one that limited the event, before saying it is unknown.
LIMITER_SCAN = 10_000
_PAGE = 500


class Explainer:
    """Answers explain questions from the store, read only: never refreshes the catalog (which writes)."""

    def __init__(self, ctx: Context, catalog: Catalog):
        self.ctx, self.store, self.catalog = ctx, ctx.store, catalog

    def explain(self, rule: str | int, event_id: int | None = None) -> dict[str, Any]:
        """`explain(RULE, EVENT_ID)`: what the rule did with the event; `explain(RUN_ID)`: the run."""
        if event_id is None:
            if isinstance(rule, bool) or not isinstance(rule, int):
                raise EngineError(f"explain takes a rule and an event id, or a run id (not {rule!r} alone)")
            return self.run(rule)
        return self.event(str(rule), int(event_id))

    # ------------------------------------------------------------------ a rule and an event

    def event(self, rule: str, event_id: int) -> dict[str, Any]:
        """What `rule` did with event `event_id`, against the version active when it was processed."""
        current = self.catalog.rule_or_fail(rule)
        row = self.store.event(event_id)
        if row is None:
            raise EngineError(f"no event {event_id}")
        out: dict[str, Any] = {"kind": "event", "rule": rule, "event": event_id, "trigger": row["trigger"],
                               "received_at": row["at"], "event_status": row["status"],
                               "state": current["state"], "current_version": current["version"]}
        if row["status"] == "rejected":
            return _outcome(out, "rejected", f"event {event_id} was rejected ({row['error']}): no rule saw it")
        if row["status"] in ("pending", "processing"):
            return _outcome(out, "pending", f"event {event_id} is {row['status']}: not processed yet, "
                                            "no rule has seen it")
        run = self.store.run_of_event(rule, event_id)
        if run is not None:
            out.update(version=run["version"], run=run["id"], run_status=run["status"])
            return _outcome(out, "started", f"started run {run['id']} (version {run['version']}, "
                                            f"now {run['status']})")
        at = _instant(row["at"])
        version = self._version_at(rule, at)
        if version is None:
            first = self.store.versions(rule)[0]
            return _outcome(out, "no_version", f"rule '{rule}' had no version yet when event {event_id} was "
                                               f"processed (version 1 was published at {first['created_at']})")
        out["version"] = version["version"]
        loaded = self.catalog.load(rule, version["version"])
        if loaded is None:
            reason = self.catalog.unloadable.get((rule, version["version"]), "it cannot be loaded")
            return _outcome(out, "unloadable", f"version {version['version']} could not consider it: {reason}")
        code = loaded.code
        if not self._is_start(code, row, event_id, out):
            return out
        return self._filter_and_after(out, loaded, row, at)

    def _version_at(self, rule: str, at: dt.datetime) -> dict[str, Any] | None:
        """The version current at `at`: the last one published at or before it (revert appends one)."""
        found = None
        for version in self.store.versions(rule):
            if _instant(version["created_at"]) <= at:
                found = version
        return found

    def _is_start(self, code: RuleCode, row: dict[str, Any], event_id: int, out: dict[str, Any]) -> bool:
        """Is the event one the version starts on? Else the answer is written into `out`."""
        trigger = row["trigger"]
        if trigger != code.trigger:
            other = self._other_uses(out["rule"], out["version"], trigger)
            starts = "a schedule" if code.trigger == SCHEDULE_TRIGGER else code.trigger
            _outcome(out, "not_trigger", f"not the rule's trigger: event {event_id} is a {trigger} event and "
                                         f"version {out['version']} starts on {starts}{other}")
            out["rule_trigger"] = code.trigger
            return False
        if trigger == SCHEDULE_TRIGGER:
            target = self.store.schedule_rule(event_id)
            if target != out["rule"]:
                _outcome(out, "not_trigger", f"not the rule's trigger: event {event_id} is the schedule slot of "
                                             f"rule '{target}', which it alone starts")
                out["rule_trigger"] = code.trigger
                return False
        return True

    def _other_uses(self, rule: str, version: int, trigger: str) -> str:
        """`; its runs wait for it` when the version awaits or exits on the trigger (runs, not starts)."""
        hows = {how for t, how in self.store.version_uses(rule, version) if t == trigger}
        said = [text for how, text in (("await", "its runs wait for it (`wait for`)"),
                                       ("exit", "its runs exit on it (`exit when`)")) if how in hows]
        return "; " + " and ".join(said) + ": see `explain RUN_ID` of a run" if said else ""

    def _filter_and_after(self, out: dict[str, Any], loaded: LoadedRule, row: dict[str, Any],
                          at: dt.datetime) -> dict[str, Any]:
        code, event_id = loaded.code, out["event"]
        raw = _json(row["data"])
        schema = self._schema()
        typed = raw
        try:
            typed = validate_event(lookup_trigger(schema.triggers, row["trigger"]), raw)
        except (EventError, WhenthenError):
            pass  # the declaration changed since: the stored data as it is
        condition = _where_text(code)
        passed = vm.eval_filter(code, typed, now=at)
        if condition is not None:
            out["condition"] = condition
            out.update(self._breakdown(condition, code, row["trigger"], raw, at, schema))
            failure = vm.filter_error(code, typed, now=at)
            if failure is not None:
                out["filter_error"] = failure.error
        state_note = self._state_note(out)
        if not passed:
            error = f" (a runtime error counts as false: {out['filter_error']})" if out.get("filter_error") else ""
            _outcome(out, "filtered", f"filtered: `when {code.trigger} where {condition}` was false{error}"
                                      + state_note)
            return out
        if code.limit_keys is not None:
            key = policies.entry_key(code, typed, at)
            if key is not None:
                out["limit_key"] = json.loads(key)
                limiter = self._limiter(out["rule"], key, code, at)
                if limiter is not None:
                    run_id, started = limiter
                    out["limited_by"] = {"run": run_id, "started_at": started}
                    if run_id is None:
                        return _outcome(out, "limited", f"limited (entry limit `once per`): an earlier run for "
                                                        f"{show_value(out['limit_key'])} (not among the last "
                                                        f"{LIMITER_SCAN} runs read)")
                    within = f" within {values.format_duration(dt.timedelta(seconds=code.limit_within))}" \
                        if code.limit_within is not None else ""
                    return _outcome(out, "limited", f"limited (entry limit `once per`{within}): by run {run_id}, "
                                                    f"started at {started} for {show_value(out['limit_key'])}")
        what = "the condition was true" if condition is not None else "the rule has no condition"
        state = out["state"]
        if state in ("paused", "archived"):
            return _outcome(out, state, f"rule {state}: {what} but no run started; the rule is {state} now and "
                                        f"was not active when event {event_id} was processed (state changes are "
                                        "not recorded, only the current state)")
        return _outcome(out, "inactive", f"rule not active then: {what} but no run started; the rule is active "
                                         f"now, so it was paused (or archived) when event {event_id} was processed "
                                         "(state changes are not recorded, only the current state)")

    def _state_note(self, out: dict[str, Any]) -> str:
        state = out["state"]
        if state == "active":
            return ""
        return (f"; the rule is {state} now: if it was {state} when event {out['event']} was processed, "
                "it did not consider the event at all (state changes are not recorded)")

    def _breakdown(self, condition: str, code: RuleCode, trigger: str, raw: Any, at: dt.datetime,
                   schema: Schema) -> dict[str, Any]:
        """The REPL's breakdown of the condition (runtime/evaluate.py), as parts and as its text."""
        try:
            prepared = prepare_expression(condition, trigger, schema, timezone=code.timezone)
            parts = prepared.explain(raw, at)
        except (CompileError, EventError) as exc:
            return {"breakdown": None, "breakdown_error": _first_line(exc)}
        except WhenthenError as exc:  # a runtime error in a part: the decision above still stands
            return {"breakdown": None, "breakdown_error": str(exc)}
        return {"breakdown": [p.to_json() for p in parts],
                "breakdown_text": format_explanation(parts, code.timezone, indent="  ")}

    def _limiter(self, rule: str, key: str, code: RuleCode, at: dt.datetime) -> tuple[int | None, str] | None:
        """(run id, its start) of the run that kept an event at `at` out, or None when none did.
        The entries table holds the last start per key: one lookup, unless a later run took the key
        over; then the rule's older runs are read, newest first, for the last one before `at`."""
        t = epoch(at)
        last = self.store.entry(rule, key)
        if last is None:
            return None
        started, run_id = last
        if started <= t:
            if code.limit_within is None or started > t - code.limit_within:
                return run_id, format_datetime(from_epoch(started))
            return None
        before, read = run_id, 0
        while read < LIMITER_SCAN:
            page = self.store.runs_page(rule, None, before, _PAGE)
            if not page:
                return None
            for run in page:
                read += 1
                begun = _instant(run["started_at"])
                if epoch(begun) > t:
                    continue
                if code.limit_within is not None and epoch(begun) <= t - code.limit_within:
                    return None
                event = self.store.event(run["event_id"]) if run["event_id"] else None
                if event is not None and self._key_of(code, event, begun) == key:
                    return run["id"], run["started_at"]
            before = page[-1]["id"]
        return None, "unknown"

    def _key_of(self, code: RuleCode, event: dict[str, Any], at: dt.datetime) -> str | None:
        try:
            data = validate_event(lookup_trigger(self._schema().triggers, event["trigger"]), _json(event["data"]))
        except WhenthenError:
            return None
        return policies.entry_key(code, data, at)

    def _schema(self) -> Schema:
        """The declarations as stored (read without the catalog's refresh, which writes)."""
        schema = self.catalog.schema
        for name, body in self.store.decls("trigger").items():
            schema.triggers[name] = TriggerSchema(name, type_from_data(body), origin="program")
        schema.triggers.update(self.catalog.host_triggers)
        return schema

    # ------------------------------------------------------------------ a run

    def run(self, run_id: int) -> dict[str, Any]:
        """A run's status, the step it is at, and for a waiting run what it waits for."""
        found = self.store.runs(run_id=run_id)
        if not found:
            raise EngineError(f"no run {run_id}")
        view = run_view(found[0])
        out: dict[str, Any] = {"kind": "run", "run": run_id, **{k: view[k] for k in ("rule", "version", "status", "started_at",
                                                                    "updated_at")},
                               "event": found[0]["event_id"]}
        steps = [step_view(s) for s in self.store.steps(run_id)]
        out["step"] = steps[-1] if steps else None
        out["steps"] = len(steps)
        status = view["status"]
        if view.get("error"):
            out["error"] = view["error"]
        if status == "waiting":
            out["waiting"] = self._waiting(run_id, found[0], steps)
        return out

    def _waiting(self, run_id: int, row: dict[str, Any], steps: list[dict[str, Any]]) -> dict[str, Any]:
        """What a waiting run waits for: a time, an event (trigger, condition, the values it was
        registered with, the deadline) or a retry; and the exit clauses it is registered for."""
        deadline = format_datetime(from_epoch(row["deadline"])) if row.get("deadline") is not None else None
        waiting: dict[str, Any] = {"kind": "time", "deadline": deadline}
        stored = self.store.get_run(run_id)
        frame = decode_frame(stored.frame) if stored is not None else None
        loaded = self.catalog.load(row["rule"], row["version"])
        last = steps[-1] if steps else None
        if last is not None and last["kind"] == "action" and last.get("error"):
            waiting.update(kind="retry", action=last["action"], error=last["error"], attempt=last.get("attempt"))
        elif frame is not None and frame.pending is not None:
            pending = frame.pending
            if pending.get("kind") == "for":
                waiting.update(kind="event", trigger=pending.get("trigger"),
                               values={f: values.to_json(v) for f, v in pending.get("correlation") or []})
                line = last.get("line") if last is not None and last["kind"] == "wait" else None
                if loaded is not None and line is not None:
                    waiting["line"] = line
                    condition = _wait_text(loaded.code, line)
                    if condition:
                        waiting["condition"] = condition
            else:
                waiting["kind"] = "time"
        if frame is None and stored is not None and stored.damaged:
            waiting["damaged"] = stored.damaged
        if loaded is not None and frame is not None:
            exits = []
            for index, clause in enumerate(loaded.code.exits):
                pairs = vm.exit_correlation(loaded.code, index, frame.event)
                exits.append({"trigger": clause.trigger,
                              "values": {f: values.to_json(v) for f, v in pairs}})
            if exits:
                waiting["exits"] = exits
        return waiting


# ----------------------------------------------------------------------------- the text `explain` prints


def describe(found: dict[str, Any]) -> str:
    """An explanation as the CLI prints it: a heading, the answer, the REPL's breakdown indented."""
    if found.get("kind") == "run":
        return _run_summary(found)
    version = f" version {found['version']}" if found.get("version") is not None else ""
    lines = [f"rule '{found['rule']}'{version} · event {found['event']} ({found['trigger']}, "
             f"received {found['received_at']})", found["reason"]]
    if found.get("breakdown_text"):
        lines += ["  " + line for line in found["breakdown_text"].splitlines()]
    elif found.get("breakdown_error"):
        lines.append(f"  (no breakdown: {found['breakdown_error']})")
    if found.get("current_version") is not None and found.get("version") not in (None, found["current_version"]):
        lines.append(f"(the rule's current version is {found['current_version']}; this is the version that was "
                     "active when the event was processed)")
    return "\n".join(lines)


def _run_summary(out: dict[str, Any]) -> str:
    lines = [f"run {out['run']} · rule '{out['rule']}' version {out['version']} · {out['status']} "
             f"(started {out['started_at']}, by event {out['event']})"]
    step = out.get("step")
    if step is not None:
        where = f" (line {step['line']})" if step.get("line") and step["kind"] != "branch" else ""
        what = f"{step['action']}({', '.join(step['args'])})" if step["kind"] == "action" else describe_step(step)
        lines.append(f"at step {out['steps']}: {what}{where}, {step['at']}")
    waiting = out.get("waiting")
    if waiting is not None:
        until = f" until {waiting['deadline']}" if waiting.get("deadline") else " (no deadline)"
        if waiting["kind"] == "event":
            condition = f" where {waiting['condition']}" if waiting.get("condition") else ""
            shown = ", ".join(f"{f} = {show_value(v)}" for f, v in waiting["values"].items())
            registered = f" (registered with {shown})" if shown else ""
            lines.append(f"waiting for {waiting['trigger']}{condition}{registered}{until}; on the deadline "
                         "the `wait for` times out" if waiting.get("deadline") else
                         f"waiting for {waiting['trigger']}{condition}{registered}{until}")
        elif waiting["kind"] == "retry":
            lines.append(f"waiting to retry {waiting['action']} (attempt {waiting.get('attempt')} failed: "
                         f"{waiting['error']}){until}")
        else:
            lines.append(f"waiting{until}")
        for clause in waiting.get("exits", []):
            shown = ", ".join(f"{f} = {show_value(v)}" for f, v in clause["values"].items())
            lines.append(f"exits on {clause['trigger']}" + (f" (registered with {shown})" if shown else ""))
        if waiting.get("damaged"):
            lines.append(f"its snapshot is damaged: {waiting['damaged']}")
    if out.get("error"):
        lines.append(f"error: {out['error']}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- helpers


def _outcome(out: dict[str, Any], outcome: str, reason: str) -> dict[str, Any]:
    out["outcome"] = outcome
    out["reason"] = reason
    return out


def _instant(text: str) -> dt.datetime:
    """A stored time (ISO 8601 text) as an aware datetime, for comparing (text order is not time order)."""
    return parse_datetime(text)


def _json(text: str | None) -> Any:
    try:
        return json.loads(text) if text is not None else {}
    except ValueError:
        return {}


def _first_line(exc: CompileError | EventError) -> str:
    diagnostics = getattr(exc, "diagnostics", None)
    if diagnostics:
        return diagnostics[0].message
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _rule_ast(code: RuleCode) -> ast.Rule | None:
    from whenthen.grammar.parser import parse
    from whenthen.source import Source

    file, _ = parse(Source(code.file or "rule", code.source))
    rules = [item for item in file.items if isinstance(item, ast.Rule)]
    return rules[0] if rules else None


def _where_text(code: RuleCode) -> str | None:
    """The condition of the rule's `when … where`, as written in the version's source."""
    rule = _rule_ast(code)
    if rule is None or rule.where is None:
        return None
    return span_text(code.source, rule.where.span.start, rule.where.span.end)


def _wait_text(code: RuleCode, line: int) -> str | None:
    """The condition of the `wait for … where` at file line `line` of the version's source."""
    rule = _rule_ast(code)
    if rule is None:
        return None
    for node in ast.walk(rule):
        if isinstance(node, ast.WaitFor) and node.where is not None \
                and node.span.line + code.first_line - 1 == line:
            return span_text(code.source, node.where.span.start, node.where.span.end)
    return None
