"""The durable engine: publish versions, accept events, dispatch them to runs, resume runs when due.

One implementation serves the CLI, the embedding API and `simulate` (an in-memory database, a
simulated clock and recorded actions). See docs/engine.md for how runs, waits, versions, leases,
retries and the journal work.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import inspect
import json
import logging
import os
import secrets
import socket
import sys
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from whenthen import calendar, values
from whenthen.calendar import SCHEDULE_TRIGGER, epoch, from_epoch
from whenthen.compiler.code import BytecodeError, RuleCode
from whenthen.compiler.decls import ActionSig, ParamSig, Schema, TriggerSchema
from whenthen.compiler.types import Type
from whenthen.diagnostics import EventError, WhenthenError
from whenthen.runtime import policies, vm
from whenthen.runtime.clock import Clock, RealClock
from whenthen.runtime.events import coerce_value, lookup_trigger, type_from_data, type_to_data, validate_event
from whenthen.runtime.scheduler import Scheduler
from whenthen.runtime.store import LeaseLost, RunRow, StoreUnavailable, open_store
from whenthen.stdlib.config import StdlibConfig
from whenthen.stdlib.errors import PermanentActionError
from whenthen.stdlib.transports import ActionCall, Transports
from whenthen.values import format_datetime

if TYPE_CHECKING:
    from whenthen.api import Program, SourceOrPaths

MAX_EMIT_DEPTH = vm.MAX_EMIT_DEPTH
# A cascade commits at least this often (units of work: events dispatched, runs started), so
# that no dispatch holds the write lock for long, and pauses after each commit so that another
# process's writer gets the lock (SQLite's busy handler polls, it does not queue).
CASCADE_CHUNK = 200
CASCADE_CHUNK_SECONDS = 0.05
CASCADE_PAUSE_SECONDS = 0.005
_log = logging.getLogger("whenthen.engine")
ENDED = ("completed", "failed", "exited")
_FAILURE_TRIGGERS = ("run.failed", "action.failed")


class EngineError(WhenthenError):
    """A request the engine cannot satisfy: unknown rule or version, bad program."""


@dataclass(frozen=True)
class RetryPolicy:
    """How often an action that raises is tried again, with exponential backoff between tries
    (the run waits, durably, for each retry; simulate retries at once)."""

    attempts: int = 3
    base_delay: float = 0.5
    factor: float = 2.0
    max_delay: float = 30.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        return min(self.max_delay, self.base_delay * self.factor ** (attempt - 1))


class ActionUnavailable(PermanentActionError):  # noqa: N818 - never retried
    """An action has no implementation here; retrying cannot help."""


@dataclass
class LoadedRule:
    """One version of a rule, decoded once, with its filter ready to call."""

    name: str
    version: int
    code: RuleCode
    accepts: Callable[[dict[str, Any]], bool]


@dataclass
class _TriggerRules:
    """The active rules on one trigger, indexed by a `field = constant` each filter requires
    (`RuleCode.equalities`), so an event evaluates only the filters it can satisfy: with 1,000
    rules each on its own `country = '…'`, one dict lookup finds the one or two to evaluate."""

    rules: list[LoadedRule]
    set_id: str  # names this set of (rule, version) for the filtered counts
    unindexed: list[int]
    index: dict[str, dict[Any, list[int]]]  # field -> _lookup_key(constant) -> positions in rules

    @classmethod
    def build(cls, rules: list[LoadedRule]) -> _TriggerRules:
        unindexed: list[int] = []
        index: dict[str, dict[Any, list[int]]] = defaultdict(lambda: defaultdict(list))
        for position, loaded in enumerate(rules):
            if loaded.code.equalities:
                fld, constant = loaded.code.equalities[0]
                index[fld][_lookup_key(constant)].append(position)
            else:
                unindexed.append(position)
        members = "\n".join(f"{r.name}\0{r.version}" for r in rules)
        set_id = hashlib.sha256(members.encode()).hexdigest()[:20]
        return cls(rules, set_id, unindexed, {f: dict(v) for f, v in index.items()})

    def __post_init__(self) -> None:
        # The common shapes, answered without merging: few rules or no index (evaluating up to
        # SMALL filters costs less than the lookup), or one indexed field only.
        if len(self.rules) <= _SMALL:
            self.index, self.unindexed = {}, list(range(len(self.rules)))
        self._all_unindexed = [self.rules[i] for i in self.unindexed] if not self.index else None
        self._single: tuple[str, dict[Any, list[LoadedRule]]] | None = None
        if len(self.index) == 1 and not self.unindexed:
            [(fld, by_value)] = self.index.items()
            self._single = (fld, {key: [self.rules[i] for i in found] for key, found in by_value.items()})

    def candidates(self, data: dict[str, Any]) -> list[LoadedRule]:
        """The rules whose filter may be true for `data`, in rule order."""
        if self._all_unindexed is not None:
            return self._all_unindexed
        if self._single is not None:
            fld, by_value = self._single
            value = data.get(fld) if "." not in fld else _field_path(data, fld)
            return by_value.get(_lookup_key(value), _NONE)
        found = list(self.unindexed)
        for fld, by_value in self.index.items():
            found.extend(by_value.get(_lookup_key(_field_path(data, fld)), ()))
        found.sort()
        return [self.rules[i] for i in found]


_NONE: list[LoadedRule] = []
_SMALL = 3  # bench/dispatch.py: one lookup costs about what three simple filters do


def _lookup_key(value: Any) -> Any:
    """The key of a value in the in-memory equality index: a str is its own key (the common case,
    no encoding); any other value its `index_key` text. Values equal in whenthen get equal keys;
    a str that happens to equal another value's key text only adds a candidate, whose filter is
    still evaluated."""
    return value if value.__class__ is str else index_key(value)


@dataclass
class Published:
    """What `publish` did to one rule."""

    rule: str
    version: int
    new_version: bool
    state: str


@dataclass
class _Queued:
    event_id: int
    trigger: str
    data: dict[str, Any]
    depth: int


@dataclass
class _Activation:
    """What one activation of a run produced, committed together at its end."""

    run: RunRow
    loaded: LoadedRule
    steps: list[dict[str, Any]] = field(default_factory=list)  # not yet written
    emits: list[tuple[str, dict[str, Any], int, str]] = field(default_factory=list)
    ordinal: int = 0
    lease_lost: bool = False
    store_lost: StoreUnavailable | None = None  # the database went away mid-activation: re-raised
    # A new run is not stored before its first activation needs it (`Engine._materialize`): until
    # then `run.id` is 0 and this holds what `Store.create_run` needs.
    start: _Start | None = None
    branches: list[tuple[int, int, int]] = field(default_factory=list)  # (split, case, share) taken


@dataclass
class _Budget:
    """What one external event may still cause (docs/engine.md, "Fan-out budget")."""

    runs: int
    events: int
    work: int = 0  # units since the last commit
    since: float = field(default_factory=time.monotonic)  # when the current chunk began
    spent: bool = False

    def refusal(self, what: str, limit: int) -> str:
        self.spent = True
        return (f"fan-out budget exceeded: one external event may cause at most {limit} {what} "
                f"([limits] fan_out_{what.split()[0]} in whenthen.toml)")


@dataclass
class _Start:
    event: _Queued
    now: dt.datetime
    exits: list[tuple[str, int, str, str | None, str | None]]


def index_key(value: Any) -> str:
    """The text under which a value is indexed for wait-for and exit lookups (80 and 80.0 agree)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return json.dumps(values.to_json(value), sort_keys=True, separators=(",", ":"))


def _field_path(data: dict[str, Any], path: str) -> Any:
    value: Any = data
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


class Engine:
    """Rules, events and runs over one SQLite database (`":memory:"` for tests)."""

    def __init__(self, db: str | os.PathLike[str] = ":memory:", clock: Clock | None = None, *,
                 retry: RetryPolicy | None = None, lease_seconds: float = 30.0, dry_run: bool = False,
                 on_trace: Callable[[dict[str, Any]], None] | None = None, config: StdlibConfig | None = None,
                 read_only: bool = False):
        # transports (SMTP, webhook secret, templates): the environment and whenthen.toml beside the
        # db; a dry run (simulate, the REPL) calls no transport, so it reads no settings
        self.config = config if config is not None else StdlibConfig() if dry_run else StdlibConfig.load(db=db)
        self.transports = Transports(self.config)
        self.store = open_store(db, read_only=read_only)  # read_only: never creates, upgrades or writes
        self.clock: Clock = clock or RealClock()
        self.retry = retry or RetryPolicy()
        self.lease_seconds = lease_seconds
        self.dry_run = dry_run  # simulate: actions are recorded; only host actions give results
        self.on_trace = on_trace
        # called after each action call with (name, seconds, failed): the service's metrics
        self.on_action: Callable[[str, float, bool], None] | None = None
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._host_actions: dict[str, ActionSig] = {}
        self._host_triggers: dict[str, TriggerSchema] = {}
        self._loaded: dict[tuple[str, int], LoadedRule] = {}
        self._unloadable: dict[tuple[str, int], str] = {}  # (rule, version) -> why it cannot be loaded
        self._unloadable_on: dict[str, list[tuple[str, int]]] = {}  # trigger -> active unloadable versions
        self._generation = -1
        self._active: dict[str, list[LoadedRule]] = {}
        self._starts: dict[str, _TriggerRules] = {}
        self._triggers: dict[str, TriggerSchema] = {}
        self._actions: dict[str, ActionSig] = {}
        self._queue: deque[_Queued] = deque()
        self._budget = self._new_budget()
        self._held: set[int] = set()  # queued events this process leased ahead of their dispatch
        self.scheduler = Scheduler(self)

    def close(self) -> None:
        self.store.close()

    # ------------------------------------------------------------------ declarations

    @property
    def schema(self) -> Schema:
        """The stdlib, system triggers and host actions: what to compile a program against."""
        from whenthen.stdlib import default_schema

        schema = default_schema()
        schema.triggers.update(self._host_triggers)
        schema.actions.update(self._host_actions)
        return schema

    def action(self, fn: Callable[..., Any] | None = None, *, name: str | None = None) -> Any:
        """Register a host action (usable as `engine.action(fn)` or `@engine.action`), typed by its
        annotations. A parameter named `idempotency_key` receives the journal's key."""
        def register(func: Callable[..., Any]) -> Callable[..., Any]:
            sig = action_signature(func, name)
            self._host_actions[sig.name] = sig
            self._generation = -1
            return func
        return register(fn) if fn is not None else register

    def trigger(self, name: str, model: Any) -> TriggerSchema:
        """Declare a host trigger from a pydantic model (or TypedDict, or whenthen Type): rules
        compiled against `engine.schema` may start on it, and `emit` validates its events."""
        from whenthen.runtime.host import trigger_schema

        schema = trigger_schema(name, model)
        self._host_triggers[name] = schema
        self._generation = -1
        return schema

    def unbound_actions(self) -> list[str]:
        """Actions that active rules call, declared in a program, with no implementation here."""
        self._refresh()
        called: set[str] = set()
        for loaded in (rule for rules in self._active.values() for rule in rules):
            called |= _called_actions(loaded.code)
        return sorted(name for name in called if (sig := self._actions.get(name)) is not None
                      and sig.origin != "stdlib" and sig.impl is None)

    def check_bindings(self) -> None:
        """Raise EngineError when an active rule calls a declared action with no implementation,
        unless unbound actions are opted into the outbox (`WHENTHEN_UNBOUND_ACTIONS=outbox`).
        The CLI calls it before `emit`, `ingest` and `worker` run anything; embedders call it once
        after registering their actions."""
        missing = self.unbound_actions()
        if missing and self.config.unbound_actions != "outbox":
            names = ", ".join(missing)
            raise EngineError(f"no implementation for action(s) {names}: register them with engine.action or "
                              "--actions MODULE_OR_FILE.py, or set WHENTHEN_UNBOUND_ACTIONS=outbox to record "
                              "their calls in the outbox")

    def _refresh(self) -> None:
        """Reload active rules and declarations when another call or process changed them."""
        generation = self.store.generation()
        if generation == self._generation:
            return
        from whenthen.stdlib import default_schema

        schema = default_schema()
        triggers = dict(schema.triggers)
        for name, body in self.store.decls("trigger").items():
            triggers[name] = TriggerSchema(name, type_from_data(body), origin="program")
        actions = dict(schema.actions)
        for name, body in self.store.decls("action").items():
            actions[name] = action_from_data(name, body)
        actions.update(self._host_actions)
        triggers.update(self._host_triggers)
        self._triggers, self._actions = triggers, actions
        active: dict[str, list[LoadedRule]] = defaultdict(list)
        unloadable: dict[str, list[tuple[str, int]]] = defaultdict(list)
        for rule, version, trigger, _ in self.store.active_versions():
            loaded = self._load(rule, version)
            if loaded is not None:
                active[trigger].append(loaded)
            else:  # never runs; the events it misses are counted (`rules` shows it with the reason)
                unloadable[trigger].append((rule, version))
        self._active = dict(active)
        self._unloadable_on = dict(unloadable)
        self._starts = {trigger: _TriggerRules.build(rules) for trigger, rules in active.items()
                        if trigger != SCHEDULE_TRIGGER}
        for group in self._starts.values():
            self.store.save_active_set(group.set_id, [(r.name, r.version) for r in group.rules])
        self._generation = generation

    def _load(self, rule: str, version: int) -> LoadedRule | None:
        key = (rule, version)
        loaded = self._loaded.get(key)
        if loaded is None:
            row = self.store.version(rule, version)
            if row is None:
                self._unloadable[key] = f"version {version} of rule '{rule}' is missing"
                return None
            if row.get("damaged"):  # failed its checksum: never decoded, never run
                self._unloadable[key] = row["damaged"]
                return None
            try:
                code = RuleCode.decode(row["bytecode"])
            except BytecodeError as exc:  # written by another format version: never crash
                self._unloadable[key] = f"version {version} of rule '{rule}' is unloadable: {exc}"
                return None
            loaded = LoadedRule(rule, version, code, _filter_of(code))
            self._loaded[key] = loaded
        return loaded

    def trigger_schema(self, trigger: str) -> TriggerSchema:
        """The schema of a trigger known to this database (EventError if unknown)."""
        self._refresh()
        return lookup_trigger(self._triggers, trigger)

    def triggers(self) -> dict[str, TriggerSchema]:
        """The triggers events may be emitted on (declared by published programs or the host),
        by name; not the ones the engine fires itself (schedules, `run.failed`, …)."""
        self._refresh()
        return {name: t for name, t in sorted(self._triggers.items()) if t.origin not in ("schedule", "system")}

    def rule(self, name: str) -> dict[str, Any]:
        """One rule as `rules` lists it, with its current `source` and its `versions`."""
        self._rule_or_fail(name)
        found = next(r for r in self.rules() if r["name"] == name)
        current = self.store.version(name, found["version"])
        return dict(found, source=current["source"] if current else None, versions=self.versions(name))

    def source(self, rule: str, version: int) -> str:
        """The source text of one stored version of a rule."""
        self._rule_or_fail(rule)
        found = self.store.version(rule, version)
        if found is None:
            raise EngineError(f"rule '{rule}' has no version {version}")
        return found["source"]

    # ------------------------------------------------------------------ versions

    def publish(self, program: Program | SourceOrPaths, author: str | None = None, enable: bool = False,
                prune: bool = False) -> list[Published]:
        """Store a new version of each rule whose compiled form changed. New rules start paused
        unless `enable`; an existing rule keeps its state (or becomes active with `enable`).
        With `prune`, the stored rules the program no longer has (left out, or renamed) are
        archived in the same transaction (SPEC 3: `publish … --prune`).
        A compiled Program carries everything stored (bytecode and its trigger uses); source is
        compiled against this database's declarations first."""
        from whenthen.api import Program, compile

        if not isinstance(program, Program):
            program = compile(program, self.schema)
        with self.store.batch():  # one transaction: the whole program or nothing, even if the process dies
            report = self._publish_compiled(program, author, enable)
            if prune:
                for row in self.store.rules():
                    if row["name"] not in program.rules and row["state"] != "archived":
                        self.store.set_state(row["name"], "archived")
                        report.append(Published(row["name"], row["version"], False, "archived"))
            return report

    def _publish_compiled(self, program: Any, author: str | None, enable: bool) -> list[Published]:
        at = format_datetime(self.clock.now())
        for name, trig in program.schema.triggers.items():
            if trig.origin in ("program", "host"):  # host ones too: a CLI worker can then validate
                self.store.save_decl("trigger", name, type_to_data(trig.type))
        for name, sig in program.schema.actions.items():
            if sig.origin == "program":
                self.store.save_decl("action", name, action_to_data(sig))
        report = []
        for name, code in program.rules.items():
            blob = code.encode()
            digest = compiled_hash(code)
            current = self.store.rule(name)
            if enable and code.schedule is not None and (current is None or current["state"] != "active"):
                self.store.arm_schedule(name, epoch(self.clock.now()))  # owes no slot before it is enabled
            if current is not None:
                old = self.store.version(name, current["version"])
                if old is not None and old["hash"] == digest and not old.get("damaged"):
                    if enable and current["state"] != "active":
                        self.store.set_state(name, "active")
                    state = "active" if enable else current["state"]
                    report.append(Published(name, current["version"], False, state))
                    continue
            number = self.store.add_version(name, code.source, blob, digest, author, at, code.trigger,
                                            "active" if enable else "paused")
            self.store.save_uses(name, number, list(code.uses))
            if enable:
                self.store.set_state(name, "active")
            state = self.store.rule(name)["state"]  # type: ignore[index]
            report.append(Published(name, number, True, state))
        return report

    def _rule_or_fail(self, rule: str) -> dict[str, Any]:
        found = self.store.rule(rule)
        if found is None:
            known = [r["name"] for r in self.store.rules()]
            import difflib

            lowered = {k.lower(): k for k in known}
            close = difflib.get_close_matches(rule.lower(), list(lowered), n=1)
            hint = f"; did you mean '{lowered[close[0]]}'?" if close else ""
            raise EngineError(f"unknown rule '{rule}'{hint}")
        return found

    def enable(self, rule: str) -> None:
        found = self._rule_or_fail(rule)
        if found["trigger"] == SCHEDULE_TRIGGER and found["state"] != "active":
            self.store.arm_schedule(rule, epoch(self.clock.now()))  # slots while paused are not owed
        self.store.set_state(rule, "active")

    def pause(self, rule: str) -> None:
        self._rule_or_fail(rule)
        self.store.set_state(rule, "paused")

    def archive(self, rule: str) -> None:
        """Retire a rule (SPEC 3): no new runs, in-flight runs finish, hidden from listings unless
        asked for; its versions stay, and `enable` brings it back."""
        self._rule_or_fail(rule)
        self.store.set_state(rule, "archived")

    def revert(self, rule: str, version: int, author: str | None = None) -> int:
        """Append a new version equal to `version` and make it current; returns its number."""
        current = self._rule_or_fail(rule)
        old = self.store.version(rule, version)
        if old is None:
            raise EngineError(f"rule '{rule}' has no version {version} (it has 1 to {current['version']})")
        if old.get("damaged"):
            raise EngineError(f"{old['damaged']}: cannot revert to it")
        at = format_datetime(self.clock.now())
        number = self.store.add_version(rule, old["source"], old["bytecode"], old["hash"],
                                        author or f"revert to {version}", at, old["trigger"], current["state"])
        self.store.save_uses(rule, number, self.store.version_uses(rule, version))
        return number

    def versions(self, rule: str) -> list[dict[str, Any]]:
        current = self._rule_or_fail(rule)
        return [dict(v, current=v["version"] == current["version"]) for v in self.store.versions(rule)]

    def rules(self) -> list[dict[str, Any]]:
        counts = self.store.run_counts()
        filtered = self.store.filtered_counts()
        unstarted = self.store.unstarted_counts()
        branches: dict[str, list[tuple[int, int, int, int, int]]] = defaultdict(list)
        for rule, *row in self.store.branch_counts():
            branches[rule].append(tuple(row))  # type: ignore[arg-type]
        out = []
        for r in self.store.rules():
            runs = counts.get(r["name"], {})
            out.append({"name": r["name"], "version": r["version"], "state": r["state"], "trigger": r["trigger"],
                        "runs": sum(runs.values()), **{s: runs.get(s, 0) for s in
                                                       ("running", "waiting", "completed", "failed", "exited")},
                        "filtered": filtered.get(r["name"], 0)})
            reason = self._unloadable_reason(r["name"], r["version"])
            if reason is not None:  # SPEC 3.2: shown, with the reason
                out[-1]["unloadable"] = reason
            if unstarted.get(r["name"]):
                out[-1]["unstarted"] = unstarted[r["name"]]
            if r["trigger"] == SCHEDULE_TRIGGER:
                out[-1].update(self._schedule_view(r["name"], r["version"], r["state"]))
            if branches.get(r["name"]):  # the current version's shares name the branches no run took
                loaded = self._load(r["name"], r["version"]) if reason is None else None
                current = policies.splits_of(loaded.code) if loaded is not None else {}
                out[-1]["splits"] = policies.splits_view(branches[r["name"]], current)
        return out

    def _unloadable_reason(self, rule: str, version: int) -> str | None:
        """Why a version cannot be loaded, or None: its checksum is verified without decoding it."""
        key = (rule, version)
        if key in self._loaded:
            return None
        if key in self._unloadable:
            return self._unloadable[key]
        row = self.store.version(rule, version)
        return f"version {version} of rule '{rule}' is missing" if row is None else row.get("damaged")

    def _schedule_view(self, rule: str, version: int, state: str) -> dict[str, Any]:
        """`schedule` (as written) and `next_fire` (UTC; null when paused or never again)."""
        loaded = self._load(rule, version)
        if loaded is None or loaded.code.schedule is None:
            return {}
        code = loaded.code
        last = self.store.schedule_slots().get(rule)
        now = self.clock.now()
        after = min(from_epoch(last), now) if last is not None else now  # a slot past the clock: see Scheduler.slots
        slot = calendar.next_fire(code.schedule, code.timezone, after) if state == "active" else None
        return {"schedule": calendar.describe(code.schedule, code.timezone),
                "next_fire": format_datetime(slot) if slot is not None else None}

    def uses(self, trigger: str) -> list[dict[str, Any]]:
        """Where a trigger is started on (`start`), awaited (`await`), exited on (`exit`) or emitted.
        An unknown trigger is an EngineError (as an unknown rule is for `versions`), not an empty list."""
        found = self.store.uses(trigger)
        if not found:  # read without _refresh, which writes: `uses` runs on read-only databases
            from whenthen.stdlib import default_schema

            known = {**default_schema().triggers, **self._host_triggers}
            known.update((name, TriggerSchema(name, type_from_data(body), origin="program"))
                         for name, body in self.store.decls("trigger").items())
            try:
                lookup_trigger(known, trigger)
            except EventError as exc:
                raise EngineError(str(exc)) from None
        return found

    # ------------------------------------------------------------------ events in

    def emit(self, trigger: str, data: Any, *, dispatch: bool = True, origin: str = "external") -> int:
        """Validate and record one event, dispatch it, and run what it starts or resumes until every
        run waits or ends; returns the event's id. Raises EventError (after recording the
        rejection) on bad data. With `dispatch=False` the event is only queued for workers."""
        self._refresh()
        now = self.clock.now()
        try:
            schema = lookup_trigger(self._triggers, trigger)
            if schema.origin in ("schedule", "system") and origin == "external":
                raise EventError(f"'{trigger}' is fired by the engine; it cannot be emitted", trigger=trigger)
            typed = validate_event(schema, data)
        except EventError as exc:
            self._reject(trigger, data, now, str(exc))
            raise
        with self.store.batch():  # one commit for the event and what it does (until an action's effect)
            text = _dump_values(typed)
            if dispatch:  # `processing` under our lease if anything commits before its dispatch ends
                event_id = self.store.open_event(trigger, text, format_datetime(now), origin, self.owner,
                                                 time.time() + self.lease_seconds)
            else:
                event_id = self.store.insert_event(trigger, text, format_datetime(now), "pending", origin=origin)
            if dispatch:
                self._budget = self._new_budget()
                self._process(_Queued(event_id, trigger, typed, 0))
                self._drain()
        return event_id

    def _new_budget(self) -> _Budget:
        return _Budget(self.config.fan_out_runs, self.config.fan_out_events)

    def accept(self, trigger: str, data: Any, *, idempotency_key: str | None = None) -> tuple[int, bool]:
        """Validate an event and record it `pending` for the workers (no dispatch here); returns
        (event id, duplicate). The idempotency key is recorded in the event's transaction: the same
        key within 24 h returns the first event's id and records nothing. Raises EventError (after
        recording the rejection) with `.errors` naming every bad field."""
        self._refresh()
        now = self.clock.now()
        try:
            schema = lookup_trigger(self._triggers, trigger)
            if schema.origin in ("schedule", "system"):
                raise EventError(f"'{trigger}' is fired by the engine; it cannot be emitted", trigger=trigger)
            typed = validate_event(schema, data)
        except EventError as exc:
            self._reject(trigger, data, now, str(exc))
            raise
        return self.store.accept_event(trigger, _dump_values(typed), format_datetime(now),
                                       idempotency_key=idempotency_key, wall_now=time.time())

    def accept_batch(self, items: Iterable[tuple[Any, Any]]) -> list[int | EventError]:
        """`accept` for each (trigger, data), the accepted ones committed in one transaction;
        one result per item, in order: the event id, or the EventError that rejected it."""
        results: list[int | EventError] = []
        with self.store.batch():
            for trigger, data in items:
                try:
                    if not isinstance(trigger, str) or not trigger:
                        raise EventError("the event has no \"trigger\" (a trigger name like \"guest.added\")")
                    results.append(self.accept(trigger, data)[0])
                except EventError as exc:
                    results.append(exc)
        return results

    def reject(self, trigger: str | None, data: Any, error: str) -> None:
        """Record an event that could not even be read (bad JSON, no trigger)."""
        self._reject(trigger, data, self.clock.now(), error)

    def _reject(self, trigger: str | None, data: Any, now: dt.datetime, error: str) -> None:
        text = data if isinstance(data, str) else _dumps(data, lenient=True)
        # what was refused may hold lone surrogates, which no UTF-8 column can store: escaped
        name = _storable(trigger) if isinstance(trigger, str) else None
        self.store.insert_event(name, _storable(text[:10_000]), format_datetime(now), "rejected",
                                error=_storable(error))

    def ingest(self, lines: Iterable[str | bytes], on_line: Callable[[int, str | None], None] | None = None,
               commit_every: int = 100, keep_rejected: bool = True) -> tuple[int, list[tuple[int, str]]]:
        """Emit each JSON line `{"trigger": …, "data": {…}}`; returns (accepted, [(line, error)…]).
        `on_line(line_number, error_or_None)` is called after each line (progress bars, and the
        rejections as they happen: with `keep_rejected=False` they are not collected, so a file
        of any size costs one line of memory). Lines may be bytes (`jsonl.raw_lines`): each is
        checked as UTF-8 on its own, and a bad one is rejected, not the file.

        The lines' dispatches are committed `commit_every` lines at a time (one transaction; an
        action's intent still commits everything before it, at once). A crash loses the lines
        since the last commit, entirely: what is stored is always the events of a prefix of the
        lines, one row per non-blank line (docs/engine.md). `commit_every=1` commits each line."""
        if commit_every <= 1:
            return self._ingest(lines, on_line, 1, keep_rejected)
        with self.store.group():
            return self._ingest(lines, on_line, commit_every, keep_rejected)

    def _ingest(self, lines: Iterable[str | bytes], on_line: Callable[[int, str | None], None] | None,
                commit_every: int, keep_rejected: bool) -> tuple[int, list[tuple[int, str]]]:
        from whenthen.runtime.events import parse_ingest_line
        from whenthen.runtime.jsonl import decode_line, shown_line

        accepted, rejected = 0, []
        uncommitted = 0
        for number, raw in enumerate(lines, 1):
            if not raw.strip():
                continue
            if uncommitted >= commit_every:
                self.store.commit_now()
                uncommitted = 0
            uncommitted += 1
            error = None
            try:
                trigger, data = parse_ingest_line(decode_line(raw))
            except EventError as exc:
                error = str(exc)
                self.reject(getattr(exc, "trigger", None), shown_line(raw), error)
            else:
                try:
                    self.emit(trigger, data)
                    accepted += 1
                except EventError as exc:
                    error = str(exc)
            if error and keep_rejected:
                rejected.append((number, error))
            if on_line:
                on_line(number, error)
        return accepted, rejected

    # ------------------------------------------------------------------ workers

    def run_due(self, limit: int | None = None) -> int:
        """Resume every run whose wait is due now (by deadline, then creation); returns how many."""
        done = 0
        while (limit is None or done < limit) and self.store.has_due_run(epoch(self.clock.now()), time.time()):
            self._refresh()
            with self.store.batch():
                run = self.store.claim_next_due_run(epoch(self.clock.now()), time.time(), self.owner,
                                                    time.time() + self.lease_seconds)
                if run is None:
                    break
                self._budget = self._new_budget()
                self._resume_claimed(run)
                self._drain()
            done += 1
        return done

    def process_pending(self, limit: int | None = None) -> int:
        """Dispatch events that were recorded but not processed (enqueued, emitted by another
        process, or left by a worker that died); returns how many."""
        count = 0
        while (limit is None or count < limit) and self.store.has_claimable_event(time.time()):
            self._refresh()
            with self.store.batch():
                row = self.store.claim_next_event(self.owner, time.time(), time.time() + self.lease_seconds)
                if row is None:
                    break
                event_id, trigger, data, _at, depth = row
                try:
                    typed = validate_event(lookup_trigger(self._triggers, trigger), json.loads(data))
                except (EventError, ValueError) as exc:
                    self.store.reject_event(event_id, str(exc))
                    continue
                self._budget = self._new_budget()
                self._process(_Queued(event_id, trigger, typed, depth))
                self._drain()
            count += 1
        return count

    def work(self, once: bool = False, idle: float = 0.5, stop: Callable[[], bool] | None = None) -> int:
        """The worker loop: pending events and due runs, until `stop()` (or one pass with `once`)."""
        total, backoff = 0, 0.0
        while True:
            # small slices, so a stop request is honoured between them
            try:
                n = self.process_pending(limit=100) + self.run_due(limit=100) + self.fire_schedules()
            except StoreUnavailable as exc:
                # The database went away (or aborted a transaction): what was not committed is
                # retaken from the database once it is back (leases expire); try again, backing off.
                if once:
                    raise
                self._queue.clear()
                backoff = min(max(backoff * 2, 0.1), 5.0)
                print(f"whenthen: worker: {exc}; retrying in {backoff:.1f}s", file=sys.stderr, flush=True)
                time.sleep(backoff)
                if stop is not None and stop():
                    return total
                continue
            backoff = 0.0
            total += n
            if stop is not None and stop():
                return total
            if n == 0:
                if once:
                    return total
                self.store.wait_for_work(idle, stop)  # PostgreSQL: woken early by a NOTIFY

    # ------------------------------------------------------------------ dispatch

    def _drain(self) -> None:
        """Dispatch queued emitted events, first in first out, at the current instant."""
        while self._queue:
            item = self._queue.popleft()
            held = item.event_id in self._held
            self._held.discard(item.event_id)
            if held or self.store.claim_event(item.event_id, self.owner, time.time(),
                                              time.time() + self.lease_seconds):
                self._process(item)
                self._budget.work += 1
                if self._queue:
                    self._maybe_commit_chunk()
        self._held.clear()

    def _maybe_commit_chunk(self) -> None:
        """Commit a long cascade in chunks (CASCADE_CHUNK units or CASCADE_CHUNK_SECONDS), so
        other writers are never blocked for long. The events still queued are leased to this
        process first, so no other worker takes them (each with a budget of its own) meanwhile."""
        budget = self._budget
        if budget.work < CASCADE_CHUNK and time.monotonic() - budget.since < CASCADE_CHUNK_SECONDS:
            return
        expires = time.time() + self.lease_seconds
        for item in self._queue:
            if item.event_id not in self._held and self.store.claim_event(item.event_id, self.owner, time.time(),
                                                                          expires):
                self._held.add(item.event_id)
        self.store.commit_now()
        if self.store.shared:  # a file other processes write to: let a waiting writer in
            time.sleep(CASCADE_PAUSE_SECONDS)
        budget.work, budget.since = 0, time.monotonic()

    def _process(self, event: _Queued) -> None:
        """One event: exits first, then matching `wait for`s, then the rules it starts. Callers
        `_refresh()` first (once per transaction: inside it, no other process can publish)."""
        trigger, data = event.trigger, event.data
        now = self.clock.now()
        # Both kinds of candidates are read before anything runs: a wait that begins while this
        # event is processed cannot match it (and an exited run is skipped by _try_resume).
        exits, waits = self.store.dispatch_candidates(trigger, lambda f: index_key(_field_path(data, f)))
        for run_id, clause in exits:
            self._try_exit(run_id, clause, data, now)
        for run_id, _ in waits:
            self._try_resume(run_id, event, now)
        filtered: dict[tuple[str, int], int] = defaultdict(int)
        seen = None
        unstarted = None
        missed = self._unloadable_on.get(trigger)
        if missed:  # active versions that cannot be loaded: the event is counted as not started by them
            target = self.store.schedule_rule(event.event_id) if trigger == SCHEDULE_TRIGGER else None
            unstarted = {key: 1 for key in missed if target is None or key[0] == target} or None
        if trigger == SCHEDULE_TRIGGER:
            target = self.store.schedule_rule(event.event_id)
            for loaded in self._active.get(trigger, ()):
                if loaded.name != target:
                    continue  # a schedule event starts only the rule whose slot it is
                if loaded.accepts(data):
                    self._start(loaded, event, now)
                else:
                    filtered[(loaded.name, loaded.version)] += 1
        elif (group := self._starts.get(trigger)) is not None:
            # Only rules whose required `field = constant` the event satisfies are evaluated; the
            # others are filtered, which the store derives from `seen` (one row per event).
            for loaded in group.candidates(data):
                if loaded.accepts(data):
                    self._start(loaded, event, now)
            seen = (trigger, group.set_id)
        self.store.finish_event(event.event_id, self.owner, filtered, seen, unstarted)

    def _try_exit(self, run_id: int, clause: int, data: dict[str, Any], now: dt.datetime) -> None:
        run = self.store.get_run(run_id)
        if run is None or run.status in ENDED:
            return
        loaded = self._load(run.rule, run.version)
        frame = _decode_frame(run.frame)
        if loaded is None or frame is None:  # it cannot be evaluated: failed visibly, never skipped
            self._fail_damaged(run, loaded)
            return
        if not vm.exit_matches(loaded.code, clause, frame.event, data, now=now):
            return
        at = format_datetime(now)
        step = {"ordinal": 1_000_000, "at": at, "kind": "exit",
                "data": _dumps({"trigger": loaded.code.exits[clause].trigger, "event": values.to_json(data)})}
        if self.store.exit_run(run_id, at, [step]):
            self._trace({"kind": "run", "at": at, "rule": run.rule, "run": run.id, "status": "exited"})

    def _try_resume(self, run_id: int, event: _Queued, now: dt.datetime) -> None:
        run = self.store.get_run(run_id)
        if run is None or run.status != "waiting":
            return
        loaded = self._load(run.rule, run.version)
        frame = _decode_frame(run.frame)
        if loaded is None or frame is None:  # it cannot be evaluated: failed visibly, never skipped
            self._fail_damaged(run, loaded)
            return
        if not vm.wait_matches(loaded.code, frame, event.data, now=now):
            return
        claimed = self.store.claim_run(run, self.owner, time.time(), time.time() + self.lease_seconds,
                                       resume_event=event.event_id)
        if claimed is not None:
            self._activate(claimed, loaded, frame, event.data)

    def _start(self, loaded: LoadedRule, event: _Queued, now: dt.datetime) -> None:
        """Start a run of `loaded` for `event`. The run row is written when the first activation
        needs it (an action, an emit, a failure: `_materialize`), else once, in its final state,
        with the activation's other rows (`Store.store_new_run`); the transaction is the same."""
        code = loaded.code
        frame = vm.start_frame(code, event.data, event.depth)
        exits = []
        for index, clause in enumerate(code.exits):
            pairs = vm.exit_correlation(code, index, event.data, now=now)
            fld, value = (pairs[0][0], index_key(pairs[0][1])) if pairs else (None, None)
            exits.append(("exit", index, clause.trigger, fld, value))
        run = RunRow(0, loaded.name, loaded.version, event.event_id, "running", None, epoch(now), None,
                     event.depth, 1, 0)
        budget = self._budget
        refused = None
        if budget.runs <= 0:
            refused = budget.refusal("runs started", self.config.fan_out_runs)
        budget.runs -= 1
        budget.work += 1
        self._activate(run, loaded, frame, None, _Start(event, now, exits), refused=refused)

    def _materialize(self, act: _Activation) -> bool:
        """Store the run of `act` if it is new and not stored yet (claimed by us, due now, with its
        start snapshot), before anything that needs its id; False when an earlier, interrupted
        attempt at this event already created it (run_due resumes that one: drop this activation)."""
        start = act.start
        if start is None:
            return True
        act.start = None
        event, code = start.event, act.loaded.code
        frame = vm.start_frame(code, event.data, event.depth).encode()
        run = self.store.create_run(act.run.rule, act.run.version, event.event_id, frame, epoch(start.now),
                                    event.depth, format_datetime(start.now), self.owner,
                                    time.time() + self.lease_seconds, start.exits)
        if run is None:
            return False
        act.run = run
        return True

    def _resume_claimed(self, run: RunRow) -> None:
        """Continue a run claimed by run_due: a timer came, or a crash interrupted it."""
        loaded = self._load(run.rule, run.version)
        if loaded is None or run.frame is None:
            self._fail_unloadable(run, self._why_unloadable(run, loaded))
            return
        try:
            frame = vm.Frame.decode(run.frame)
        except BytecodeError as exc:
            self._fail_unloadable(run, f"run {run.id}: {exc}")
            return
        resume = None
        if run.resume_event is not None:
            row = self.store.event(run.resume_event)
            if row is not None:
                try:
                    resume = validate_event(lookup_trigger(self._triggers, row["trigger"]), json.loads(row["data"]))
                except (EventError, ValueError):
                    resume = None
        self._activate(run, loaded, frame, resume)

    def _why_unloadable(self, run: RunRow, loaded: LoadedRule | None) -> str:
        if run.damaged:
            return run.damaged
        if loaded is None:
            return self._unloadable.get((run.rule, run.version), f"version {run.version} of rule '{run.rule}' is missing")
        return f"run {run.id} has no snapshot"

    def _fail_damaged(self, run: RunRow, loaded: LoadedRule | None) -> None:
        """A waiting run an event concerns whose snapshot or code cannot be used: claim and fail it."""
        claimed = self.store.claim_run(run, self.owner, time.time(), time.time() + self.lease_seconds)
        if claimed is not None:
            self._fail_unloadable(claimed, self._why_unloadable(run, loaded))

    def _fail_unloadable(self, run: RunRow, error: str) -> None:
        """Fail a claimed run that cannot continue (damaged snapshot, unloadable version), with an
        error step and `run.failed`; its snapshot is not kept."""
        at = format_datetime(self.clock.now())
        step = {"ordinal": 1_000_000, "at": at, "kind": "error", "data": _dumps({"error": error})}
        emits = []
        if run.depth <= MAX_EMIT_DEPTH:
            emits.append(("run.failed", _dumps({"rule": run.rule, "run_id": str(run.id), "error": error}),
                          run.depth + 1, "system"))
        try:
            ids = self.store.commit_activation(run, status="failed", frame=None, deadline=None, wait_trigger=None,
                                               waits=[], steps=[step], error=error, at=at, emits=emits)
        except LeaseLost:
            return
        for event_id, (trigger, data, depth, _origin) in zip(ids, emits, strict=True):
            self._queue.append(_Queued(event_id, trigger, json.loads(data), depth))
        self._trace({"kind": "run", "at": at, "rule": run.rule, "run": run.id, "status": "failed", "error": error})

    def _activate(self, run: RunRow, loaded: LoadedRule, frame: vm.Frame, resume: Any,
                  start: _Start | None = None, refused: str | None = None) -> None:
        """Run until the run waits, ends or fails; commit snapshot, waits, steps and emits at once.
        A run `refused` (past the fan-out budget) fails at once with that reason."""
        act = _Activation(run, loaded, start=start)
        host = _RunHost(self, act)
        try:
            result = vm.Failed(refused, 0, 0) if refused else vm.run(loaded.code, frame, host, resume)
        except vm.HostAbort:
            if act.store_lost is not None:  # not the run's fault: the worker loop retries later
                raise act.store_lost from None
            return  # lease lost: whoever holds the run now continues it from its snapshot
        except StoreUnavailable:
            raise
        except Exception as exc:  # a bug must not take the worker down: the run fails visibly
            result = vm.Failed(f"internal error: {type(exc).__name__}: {exc}", 0, 0)
        if act.lease_lost:
            return
        run = act.run  # stored during the activation if it needed to be (`_materialize`)
        now = self.clock.now()
        at = format_datetime(now)
        deadline: float | None = None
        wait_trigger: str | None = None
        waits: list[tuple[str, int, str, str | None, str | None]] = []
        error = None
        if isinstance(result, vm.Suspended):
            status = "waiting"
            deadline = epoch(result.deadline) if result.deadline is not None else None
            wait_trigger = result.wait_trigger
            if wait_trigger is not None:
                pair = result.correlation[0] if result.correlation else None
                waits.append(("wait", 0, wait_trigger, pair[0] if pair else None,
                              index_key(pair[1]) if pair else None))
        elif isinstance(result, vm.Failed):
            status = "failed"
            if not self._materialize(act):  # run.failed names the run
                return
            run = act.run
            error = result.error + (f" (line {result.line})" if result.line else "")
            if not any(s["kind"] == "error" for s in act.steps):
                host.on_step({"kind": "error", "error": error})
            # bounded: a failure beyond the depth fires nothing, nor does a run on a failure
            # event refused by the budget (else each refused alert would fire another failure)
            failure_of_failure = refused and start is not None and start.event.trigger in _FAILURE_TRIGGERS
            if run.depth <= MAX_EMIT_DEPTH and not failure_of_failure:
                act.emits.append(("run.failed", {"rule": run.rule, "run_id": str(run.id), "error": error},
                                  run.depth + 1, "system"))
        else:
            status = "completed"
        emits = [(t, _dumps(values.to_json(d)), depth, origin) for t, d, depth, origin in act.emits]
        if act.start is not None:  # a new run that needed no row until now: written once
            stored = self.store.store_new_run(
                run.rule, run.version, run.event_id, run.depth, status=status,
                frame=frame.encode() if status == "waiting" else None, deadline=deadline, wait_trigger=wait_trigger,
                waits=act.start.exits + waits, steps=act.steps, at=at, emits=emits)
            if stored is None:  # an earlier, interrupted attempt at this event created it
                return
            run, ids = stored
            act.run = run
        else:
            try:
                ids = self.store.commit_activation(
                    run, status=status, frame=frame.encode() if status == "waiting" else run.frame
                    if status != "completed" else None, deadline=deadline, wait_trigger=wait_trigger, waits=waits,
                    steps=act.steps, error=error, at=at, emits=emits)
            except LeaseLost:
                return
        for event_id, (trigger, data, depth, _origin) in zip(ids, act.emits, strict=True):
            self._queue.append(_Queued(event_id, trigger, data, depth))
        if act.branches:  # SPEC 2.13: per split, the runs each branch took
            self.store.count_branches(run.rule, run.version, list(dict.fromkeys(act.branches)))
        record = {"kind": "run", "at": at, "rule": run.rule, "run": run.id, "status": status}
        if error:
            record["error"] = error
        self._trace(record)

    def _trace(self, record: dict[str, Any]) -> None:
        if self.on_trace is not None:
            self.on_trace(record)

    # ------------------------------------------------------------------ actions

    def _call_action(self, act: _Activation, name: str, args: dict[str, Any], step: int) -> Any:
        """Journal the intent, call the action (with retries), journal the result."""
        run = act.run
        sig = self._actions.get(name)
        now = self.clock.now()
        at = format_datetime(now)
        self._trace({"kind": "action", "at": at, "rule": run.rule, "run": run.id, "action": name,
                     "args": values.to_json(args)})
        previous = self.store.journal_get(run.id, step)
        for row in previous:
            if row.get("damaged"):  # never replay an altered result: the run fails naming it
                raise RuntimeError(row["damaged"])
            if row["status"] == "done":  # replaying after a crash: the action already happened
                act.ordinal += 1
                return values.unpack(row["result"]) if row["result"] is not None else None
        attempt = previous[-1]["attempt"] if previous and previous[-1]["status"] == "started" else len(previous) + 1
        ordinal = act.ordinal
        act.ordinal += 1
        full = _with_defaults(sig, args)
        while True:
            key = f"{run.id}:{step}:{attempt}"
            row = {"ordinal": ordinal, "attempt": attempt, "at": at, "action": name, "step": step,
                   "idem_key": key, "args": _dumps(values.to_json(args))}
            self.store.journal_intent(run, time.time() + self.lease_seconds, act.steps, row)
            act.steps = []
            outbox = None
            started = time.perf_counter()
            try:
                call = ActionCall(run.rule, run.id, key, f"{run.id}:{step}", at)
                result, outbox = self._invoke(sig, name, full, call)
                if sig is not None and sig.result is not None and result is not None:
                    result = coerce_value(sig.result, result, f"result of {name}")
            except Exception as exc:
                if self.on_action is not None:
                    self.on_action(name, time.perf_counter() - started, True)
                error = str(exc) or type(exc).__name__
                self.store.journal_result(run, key, "failed", None, error)
                if isinstance(exc, PermanentActionError) or attempt >= self.retry.attempts:
                    if run.depth <= MAX_EMIT_DEPTH:  # bounded: a failure beyond it fires nothing
                        act.emits.append(("action.failed", {"rule": run.rule, "run_id": str(run.id),
                                                            "action": name, "error": error},
                                          run.depth + 1, "system"))
                    raise RuntimeError(error) from None
                if not self.dry_run:
                    # Retry later, durably: the run goes back to its last snapshot, due after the
                    # backoff; the replay then finds this attempt failed in the journal and makes
                    # the next one. The worker is free meanwhile.
                    due = epoch(self.clock.now()) + self.retry.delay(attempt)
                    try:
                        self.store.defer_run(run, due, at)
                    except LeaseLost:
                        pass
                    act.lease_lost = True  # abandon this activation without committing it
                    raise vm.HostAbort() from None
                attempt += 1
                continue
            if self.on_action is not None:
                self.on_action(name, time.perf_counter() - started, False)
            self.store.journal_result(run, key, "done", values.pack(result), None, outbox)
            return result

    def _invoke(self, sig: ActionSig | None, name: str, args: dict[str, Any], call: ActionCall
                ) -> tuple[Any, tuple[str, str, str] | None]:
        host = self._host_actions.get(name)  # a host action may replace a stdlib one (send_message)
        if host is not None and host.impl is not None:
            return _call_with_key(host.impl, args, call.key), None
        if self.dry_run:
            return None, None
        if sig is not None and sig.impl is not None:
            return _call_with_key(sig.impl, args, call.key), None
        if sig is not None and sig.origin == "stdlib":
            return self.transports.call(name, args, call)
        if self.config.unbound_actions == "outbox":  # opted in: record the call, the result is null
            return None, (name, _dumps(values.to_json(args)), call.at)
        raise ActionUnavailable(f"action '{name}' has no implementation here (register it with "
                                "engine.action, or load it with --actions)")

    # ------------------------------------------------------------------ reading runs

    def runs(self, rule: str | None = None, status: str | None = None) -> list[dict[str, Any]]:
        """Runs with `id`, `rule`, `version`, `status`, `started_at`, `updated_at`, …; an unknown
        `rule` is an EngineError (a misspelt name must not look like a rule without runs)."""
        if rule is not None:
            self._rule_or_fail(rule)
        return self._with_splits([_run_view(r) for r in self.store.runs(rule, status)])

    def runs_page(self, rule: str | None = None, status: str | None = None, before: int | None = None,
                  limit: int = 50) -> list[dict[str, Any]]:
        """The `runs` objects newest first, ids below `before`: one page, found by keyset."""
        return self._with_splits([_run_view(r) for r in self.store.runs_page(rule, status, before, limit)])

    def _with_splits(self, views: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """A run that went through a split shows each choice as `splits` (SPEC 2.13)."""
        if views and self.store.branch_counts():
            found = self.store.split_steps([v["id"] for v in views])
            for view in views:
                if view["id"] in found:
                    view["splits"] = found[view["id"]]
        return views

    def run(self, run_id: int) -> dict[str, Any]:
        """One run with its `steps` (time, kind, and for actions the args, result and error)."""
        found = self.store.runs(run_id=run_id)
        if not found:
            raise EngineError(f"no run {run_id}")
        view = _run_view(found[0])
        event = self.store.event(found[0]["event_id"]) if found[0]["event_id"] else None
        view["event"] = {"id": event["id"], "trigger": event["trigger"], "data": json.loads(event["data"])} \
            if event else None
        view["steps"] = [_step_view(s) for s in self.store.steps(run_id)]
        return view

    def outbox(self) -> list[dict[str, Any]]:
        return [dict(o, args=json.loads(o["args"])) for o in self.store.outbox()]

    def events(self, status: str | None = None) -> list[dict[str, Any]]:
        return self.store.events(status)

    def event(self, event_id: int) -> dict[str, Any]:
        """One event: `{"id", "trigger", "data", "status", "received_at", "error"}`."""
        from whenthen.views import event_view

        row = self.store.event(event_id)
        if row is None:
            raise EngineError(f"no event {event_id}")
        return event_view(row)

    def events_page(self, status: str | None = None, before: int | None = None, limit: int = 50
                    ) -> list[dict[str, Any]]:
        """Events as `event` shows them, newest first, ids below `before` (keyset)."""
        from whenthen.views import event_view

        return [event_view(r) for r in self.store.events_page(status, before, limit)]

    # ------------------------------------------------------------------ schedules

    def next_schedule_slot(self) -> dt.datetime | None:
        """The earliest slot not yet fired of any active schedule rule (runtime/scheduler.py)."""
        return self.scheduler.next_slot()

    def fire_schedules(self, until: dt.datetime | None = None) -> int:
        """Fire each active schedule rule's latest due slot, once (runtime/scheduler.py)."""
        return self.scheduler.fire(until)

    def _dispatch_slot(self, event_id: int, data: dict[str, Any]) -> None:
        """Start the runs of one claimed schedule slot's event (the scheduler's callback)."""
        self._budget = self._new_budget()
        self._process(_Queued(event_id, SCHEDULE_TRIGGER, data, 0))
        self._drain()


class _RunHost:
    """The VM's Host for one activation: the clock, journaled actions, buffered emits and steps."""

    def __init__(self, engine: Engine, act: _Activation):
        self.engine = engine
        self.act = act

    def now(self) -> dt.datetime:
        return self.engine.clock.now()

    def call_action(self, name: str, args: dict[str, Any], step: int) -> Any:
        try:
            if not self.engine._materialize(self.act):  # the journal names the run
                raise vm.HostAbort()
            return self.engine._call_action(self.act, name, args, step)
        except LeaseLost:
            self.act.lease_lost = True
            raise vm.HostAbort() from None
        except StoreUnavailable as exc:  # the VM would fail the run for it: stop the activation instead
            self.act.store_lost = exc
            raise vm.HostAbort() from None

    def emit(self, trigger: str, data: dict[str, Any], depth: int) -> None:
        engine = self.engine
        budget = engine._budget
        if budget.events <= 0:
            raise RuntimeError(budget.refusal("events emitted", engine.config.fan_out_events))
        budget.events -= 1
        schema = engine._triggers.get(trigger)
        typed = validate_event(schema, data) if schema is not None else data
        try:
            if not engine._materialize(self.act):  # the trace names the run
                raise vm.HostAbort()
        except StoreUnavailable as exc:
            self.act.store_lost = exc
            raise vm.HostAbort() from None
        run = self.act.run
        engine._trace({"kind": "emit", "at": format_datetime(self.now()), "rule": run.rule, "run": run.id,
                       "trigger": trigger, "data": values.to_json(typed)})
        self.act.emits.append((trigger, typed, depth, "emit"))

    def run_id(self) -> int:
        """The run's id (a `split` without `by` hashes it): the run is stored first if it is new."""
        try:
            if not self.engine._materialize(self.act):
                raise vm.HostAbort()
        except StoreUnavailable as exc:
            self.act.store_lost = exc
            raise vm.HostAbort() from None
        return self.act.run.id

    def on_step(self, step: dict[str, Any]) -> None:
        if step.get("kind") == "branch" and "split" in step:
            self.act.branches.append((step["split"], step["case"], step["share"]))
            run = self.act.run
            self.engine._trace({"kind": "branch", "at": format_datetime(self.now()), "rule": run.rule,
                                "run": self.run_id(), "split": step["split"], "case": step["case"],
                                "share": step["share"]})
        data = {k: v for k, v in step.items() if k != "kind"}
        self.act.steps.append({"ordinal": self.act.ordinal, "at": format_datetime(self.now()),
                               "kind": step.get("kind", "step"), "data": _dump_values(data)})
        self.act.ordinal += 1


# ----------------------------------------------------------------------------- helpers


def _decode_frame(blob: bytes | None) -> vm.Frame | None:
    """A run's snapshot, or None when it is missing or unreadable (that run is skipped, not fatal)."""
    if blob is None:
        return None
    try:
        return vm.Frame.decode(blob)
    except BytecodeError:
        return None


def _called_actions(code: RuleCode) -> set[str]:
    """The names of the actions a rule's body calls (CALL_ACTION descriptors)."""
    from whenthen.compiler.opcodes import Opcode

    found: set[str] = set()
    pending = [code.body]
    while pending:
        piece = pending.pop()
        pending.extend(piece.codes)
        for op, arg in piece.instrs:
            if op == Opcode.CALL_ACTION:
                found.add(piece.consts[arg][0])
    return found


def compiled_hash(code: RuleCode) -> str:
    """The identity of a rule's compiled form: its bytecode without the file path it came from."""
    data = code.to_data()
    data.pop("file", None)
    data.pop("uses", None)  # derived from the body; leaving it out keeps the hashes stored before it was
    return hashlib.sha256(values.pack(data)).hexdigest()


def _filter_of(code: RuleCode) -> Callable[[dict[str, Any]], bool]:
    if code.filter is None:
        return lambda event: True
    try:
        from whenthen.runtime.fast import compile_filter

        return compile_filter(code)
    except Exception:  # the fast path is an optimisation; the VM gives the same answers
        return lambda event: vm.eval_filter(code, event)


def _with_defaults(sig: ActionSig | None, args: dict[str, Any]) -> dict[str, Any]:
    if sig is None:
        return dict(args)
    full = {}
    for p in sig.params:
        if p.name in args:
            full[p.name] = args[p.name]
        elif p.has_default:
            full[p.name] = p.default
    for k, v in args.items():
        full.setdefault(k, v)
    return full


def _call_with_key(fn: Callable[..., Any], args: dict[str, Any], key: str) -> Any:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        params = {}
    kwargs = dict(args)
    if "idempotency_key" in params or any(p.kind is p.VAR_KEYWORD for p in params.values()):
        kwargs["idempotency_key"] = key
    result = fn(**kwargs)
    if hasattr(result, "model_dump"):  # a pydantic model
        result = result.model_dump()
    return result


_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False,
                           default=values.to_json).encode


def _storable(text: str) -> str:
    """Text with lone surrogates written as `\\udXXX` escapes, so it can be stored and printed."""
    return text if text.isascii() else text.encode("utf-8", "backslashreplace").decode("utf-8")


def _dump_values(value: Any) -> str:
    """`_dumps(values.to_json(value))` in one pass: the encoder calls `to_json` only for what JSON
    lacks (datetimes, dates, durations); it falls back to the two passes for what it would write
    differently (a non-finite float, which `to_json` makes null)."""
    try:
        return _ENCODE(value)
    except (TypeError, ValueError):
        return _dumps(values.to_json(value))


def _dumps(value: Any, lenient: bool = False) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError):
        if not lenient:
            raise
        return json.dumps(repr(value))


def _run_view(row: dict[str, Any]) -> dict[str, Any]:
    view = {k: row[k] for k in ("id", "rule", "version", "status", "started_at", "updated_at")}
    if row.get("status") == "waiting":
        deadline = row.get("deadline")
        view["waiting_until"] = format_datetime(dt.datetime.fromtimestamp(deadline, dt.UTC)) \
            if deadline is not None else None
        view["waiting_for"] = row.get("wait_trigger")
    if row.get("error"):
        view["error"] = row["error"]
    return view


def _step_view(row: dict[str, Any]) -> dict[str, Any]:
    view: dict[str, Any] = {"at": row["at"], "kind": row["kind"]}
    if row["kind"] == "action":
        damaged = row.get("damaged")
        result = values.unpack(row["result"]) if row["result"] is not None and not damaged else None
        view.update(action=row["action"], args=json.loads(row["args"]) if row["args"] else {},
                    result=values.to_json(result), error=row["error"] or damaged, status=row["status"],
                    attempt=row["attempt"], idempotency_key=row["idem_key"])
    elif row["data"]:
        view.update(json.loads(row["data"]))
    return view


# ----------------------------------------------------------------------------- action declarations


def action_to_data(sig: ActionSig) -> dict[str, Any]:
    return {"params": [{"name": p.name, "type": type_to_data(p.type), "has_default": p.has_default,
                        "default": values.to_json(p.default)} for p in sig.params],
            "result": type_to_data(sig.result) if sig.result is not None else None}


def action_from_data(name: str, data: dict[str, Any]) -> ActionSig:
    params = tuple(ParamSig(p["name"], type_from_data(p["type"]), p["has_default"], p["default"])
                   for p in data["params"])
    result = type_from_data(data["result"]) if data.get("result") else None
    return ActionSig(name, params, result, origin="program")


def action_signature(fn: Callable[..., Any], name: str | None = None) -> ActionSig:
    """An ActionSig from a Python function's annotations (`idempotency_key` is not a parameter)."""
    from whenthen.runtime.events import python_type

    try:
        hints = inspect.get_annotations(fn, eval_str=True)
    except Exception:
        hints = getattr(fn, "__annotations__", {})
    params = []
    for p in inspect.signature(fn).parameters.values():
        if p.name == "idempotency_key" or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            continue
        typ = python_type(hints.get(p.name, Any))
        has_default = p.default is not inspect.Parameter.empty
        params.append(ParamSig(p.name, typ, has_default, p.default if has_default else None))
    result_hint = hints.get("return", None)
    result: Type | None = None if result_hint in (None, type(None)) else python_type(result_hint)
    from whenthen.runtime.host import with_model_arguments

    return ActionSig(name or fn.__name__, tuple(params), result, origin="host", doc=inspect.getdoc(fn) or "",
                     impl=with_model_arguments(fn, hints))


_HOST_MODULES: dict[str, Any] = {}


def load_actions_module(spec: str) -> list[Callable[..., Any]]:
    """The public functions of a Python file (`actions.py`) or importable module (`pkg.actions`),
    or those in its `ACTIONS` list or dict."""
    module = _host_module(spec)
    exported = getattr(module, "ACTIONS", None)
    if exported is not None:
        return list(exported.values()) if isinstance(exported, dict) else list(exported)
    return [obj for name, obj in vars(module).items()
            if inspect.isfunction(obj) and not name.startswith("_") and obj.__module__ == module.__name__]


def load_host_triggers(spec: str) -> dict[str, Any]:
    """The `TRIGGERS` dict of the same module: trigger name -> pydantic model (for `engine.trigger`)."""
    exported = getattr(_host_module(spec), "TRIGGERS", None) or {}
    if not isinstance(exported, dict):
        raise EngineError(f"{spec}: TRIGGERS must be a dict of trigger names to pydantic models")
    return dict(exported)


def _host_module(spec: str) -> Any:
    """The module, imported once per file version (actions and triggers come from one import)."""
    path = Path(spec)
    key = f"{path.resolve()}@{path.stat().st_mtime_ns}" if path.is_file() else spec
    if key not in _HOST_MODULES:
        _HOST_MODULES[key] = _import_host_module(spec)
    return _HOST_MODULES[key]


def _import_host_module(spec: str) -> Any:
    import importlib
    import importlib.util

    if spec.endswith(".py") or os.sep in spec or Path(spec).exists():
        path = Path(spec)
        if not path.exists():
            raise EngineError(f"actions file not found: {spec}")
        module_spec = importlib.util.spec_from_file_location(f"whenthen_actions_{path.stem}", path)
        if module_spec is None or module_spec.loader is None:
            raise EngineError(f"cannot load actions from {spec}")
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(spec)
        except ImportError as exc:
            raise EngineError(f"cannot import actions module {spec!r}: {exc}") from None
    return module
