"""The catalog: declarations, rule versions and their loaded code, and the index of rules per trigger."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from whenthen import calendar, values
from whenthen.calendar import SCHEDULE_TRIGGER, epoch, from_epoch
from whenthen.compiler.code import BytecodeError, RuleCode
from whenthen.compiler.decls import ActionSig, ParamSig, Schema, TriggerSchema
from whenthen.diagnostics import EventError
from whenthen.runtime import policies, vm
from whenthen.runtime.context import Context, EngineError
from whenthen.runtime.events import lookup_trigger, type_from_data, type_to_data
from whenthen.values import format_datetime

if TYPE_CHECKING:
    from whenthen.api import Program, SourceOrPaths


@dataclass
class LoadedRule:
    """One version of a rule, decoded once, with its filter ready to call."""

    name: str
    version: int
    code: RuleCode
    accepts: Callable[[dict[str, Any]], bool]


@dataclass
class Published:
    """What `publish` did to one rule."""

    rule: str
    version: int
    new_version: bool
    state: str


@dataclass
class TriggerRules:
    """The active rules on one trigger, indexed by a `field = constant` each filter requires
    (`RuleCode.equalities`), so an event evaluates only the filters it can satisfy: with 1,000
    rules each on its own `country = '…'`, one dict lookup finds the one or two to evaluate."""

    rules: list[LoadedRule]
    set_id: str  # names this set of (rule, version) for the filtered counts
    unindexed: list[int]
    index: dict[str, dict[Any, list[int]]]  # field -> _lookup_key(constant) -> positions in rules

    @classmethod
    def build(cls, rules: list[LoadedRule]) -> TriggerRules:
        """The index of these rules (in this order)."""
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
            value = data.get(fld) if "." not in fld else field_path(data, fld)
            return by_value.get(_lookup_key(value), _NONE)
        found = list(self.unindexed)
        for fld, by_value in self.index.items():
            found.extend(by_value.get(_lookup_key(field_path(data, fld)), ()))
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


def index_key(value: Any) -> str:
    """The text under which a value is indexed for wait-for and exit lookups (80 and 80.0 agree)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return json.dumps(values.to_json(value), sort_keys=True, separators=(",", ":"))


def field_path(data: dict[str, Any], path: str) -> Any:
    """The value at a dotted path of an event's data (None where a part is missing)."""
    value: Any = data
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


class Catalog:
    """Declarations (stdlib, published, host), rule versions and their states, and the active
    versions loaded once per store generation; storage only through the store protocol."""

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.store = ctx.store
        self.host_actions: dict[str, ActionSig] = {}
        self.host_triggers: dict[str, TriggerSchema] = {}
        self.loaded: dict[tuple[str, int], LoadedRule] = {}
        self.unloadable: dict[tuple[str, int], str] = {}  # (rule, version) -> why it cannot be loaded
        self.unloadable_on: dict[str, list[tuple[str, int]]] = {}  # trigger -> active unloadable versions
        self.generation = -1
        self.active: dict[str, list[LoadedRule]] = {}
        self.starts: dict[str, TriggerRules] = {}
        self.triggers: dict[str, TriggerSchema] = {}
        self.actions: dict[str, ActionSig] = {}

    # ------------------------------------------------------------------ declarations

    @property
    def schema(self) -> Schema:
        """The stdlib, system triggers and host actions: what to compile a program against."""
        from whenthen.stdlib import default_schema

        schema = default_schema()
        schema.triggers.update(self.host_triggers)
        schema.actions.update(self.host_actions)
        return schema

    def add_host_action(self, sig: ActionSig) -> None:
        """Declare an action implemented by the host (reloads the declarations)."""
        self.host_actions[sig.name] = sig
        self.generation = -1

    def add_host_trigger(self, name: str, schema: TriggerSchema) -> None:
        """Declare a trigger of the host (reloads the declarations)."""
        self.host_triggers[name] = schema
        self.generation = -1

    def unbound_actions(self) -> list[str]:
        """Actions that active rules call, declared in a program, with no implementation here."""
        self.refresh()
        called: set[str] = set()
        for loaded in (rule for rules in self.active.values() for rule in rules):
            called |= _called_actions(loaded.code)
        return sorted(name for name in called if (sig := self.actions.get(name)) is not None
                      and sig.origin != "stdlib" and sig.impl is None)

    def check_bindings(self) -> None:
        """EngineError when an active rule calls a declared action with no implementation, unless
        unbound actions are opted into the outbox (`WHENTHEN_UNBOUND_ACTIONS=outbox`)."""
        missing = self.unbound_actions()
        if missing and self.ctx.config.unbound_actions != "outbox":
            names = ", ".join(missing)
            raise EngineError(f"no implementation for action(s) {names}: register them with engine.action or "
                              "--actions MODULE_OR_FILE.py, or set WHENTHEN_UNBOUND_ACTIONS=outbox to record "
                              "their calls in the outbox")

    def refresh(self) -> None:
        """Reload active rules and declarations when another call or process changed them."""
        generation = self.store.generation()
        if generation == self.generation:
            return
        from whenthen.stdlib import default_schema

        schema = default_schema()
        triggers = dict(schema.triggers)
        for name, body in self.store.decls("trigger").items():
            triggers[name] = TriggerSchema(name, type_from_data(body), origin="program")
        actions = dict(schema.actions)
        for name, body in self.store.decls("action").items():
            actions[name] = action_from_data(name, body)
        actions.update(self.host_actions)
        triggers.update(self.host_triggers)
        self.triggers, self.actions = triggers, actions
        active: dict[str, list[LoadedRule]] = defaultdict(list)
        unloadable: dict[str, list[tuple[str, int]]] = defaultdict(list)
        for rule, version, trigger, _ in self.store.active_versions():
            loaded = self.load(rule, version)
            if loaded is not None:
                active[trigger].append(loaded)
            else:  # never runs; the events it misses are counted (`rules` shows it with the reason)
                unloadable[trigger].append((rule, version))
        self.active = dict(active)
        self.unloadable_on = dict(unloadable)
        self.starts = {trigger: TriggerRules.build(rules) for trigger, rules in active.items()
                       if trigger != SCHEDULE_TRIGGER}
        for group in self.starts.values():
            self.store.save_active_set(group.set_id, [(r.name, r.version) for r in group.rules])
        self.generation = generation

    def load(self, rule: str, version: int) -> LoadedRule | None:
        """One version, decoded once; None (and the reason kept) when it cannot be loaded."""
        key = (rule, version)
        loaded = self.loaded.get(key)
        if loaded is None:
            row = self.store.version(rule, version)
            if row is None:
                self.unloadable[key] = f"version {version} of rule '{rule}' is missing"
                return None
            if row.get("damaged"):  # failed its checksum: never decoded, never run
                self.unloadable[key] = row["damaged"]
                return None
            try:
                code = RuleCode.decode(row["bytecode"])
            except BytecodeError as exc:  # written by another format version: never crash
                self.unloadable[key] = f"version {version} of rule '{rule}' is unloadable: {exc}"
                return None
            loaded = LoadedRule(rule, version, code, _filter_of(code))
            self.loaded[key] = loaded
        return loaded

    def trigger_schema(self, trigger: str) -> TriggerSchema:
        """The schema of a trigger known to this database (EventError if unknown)."""
        self.refresh()
        return lookup_trigger(self.triggers, trigger)

    def emittable_triggers(self) -> dict[str, TriggerSchema]:
        """The triggers events may be emitted on, by name (not schedules nor system triggers)."""
        self.refresh()
        return {name: t for name, t in sorted(self.triggers.items()) if t.origin not in ("schedule", "system")}

    def uses(self, trigger: str) -> list[dict[str, Any]]:
        """Where a trigger is started on, awaited, exited on or emitted (EngineError if unknown)."""
        found = self.store.uses(trigger)
        if not found:  # read without refresh, which writes: `uses` runs on read-only databases
            from whenthen.stdlib import default_schema

            known = {**default_schema().triggers, **self.host_triggers}
            known.update((name, TriggerSchema(name, type_from_data(body), origin="program"))
                         for name, body in self.store.decls("trigger").items())
            try:
                lookup_trigger(known, trigger)
            except EventError as exc:
                raise EngineError(str(exc)) from None
        return found

    # ------------------------------------------------------------------ versions

    def publish(self, program: Program | SourceOrPaths, author: str | None = None, enable: bool = False,
                prune: bool = False) -> list[Published]:
        """Store a new version of each rule whose compiled form changed, in one transaction; with
        `prune`, archive the stored rules the program no longer has in it."""
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
        store, now = self.store, self.ctx.clock.now()
        at = format_datetime(now)
        for name, trig in program.schema.triggers.items():
            if trig.origin in ("program", "host"):  # host ones too: a CLI worker can then validate
                store.save_decl("trigger", name, type_to_data(trig.type))
        for name, sig in program.schema.actions.items():
            if sig.origin == "program":
                store.save_decl("action", name, action_to_data(sig))
        report = []
        for name, code in program.rules.items():
            blob = code.encode()
            digest = compiled_hash(code)
            current = store.rule(name)
            if enable and code.schedule is not None and (current is None or current["state"] != "active"):
                store.arm_schedule(name, epoch(now))  # owes no slot before it is enabled
            if current is not None:
                old = store.version(name, current["version"])
                if old is not None and old["hash"] == digest and not old.get("damaged"):
                    if enable and current["state"] != "active":
                        store.set_state(name, "active")
                    state = "active" if enable else current["state"]
                    report.append(Published(name, current["version"], False, state))
                    continue
            number = store.add_version(name, code.source, blob, digest, author, at, code.trigger,
                                       "active" if enable else "paused")
            store.save_uses(name, number, list(code.uses))
            if enable:
                store.set_state(name, "active")
            state = store.rule(name)["state"]  # type: ignore[index]
            report.append(Published(name, number, True, state))
        return report

    def rule_or_fail(self, rule: str) -> dict[str, Any]:
        """A rule's row; EngineError naming the closest known rule when there is none."""
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
        """Make a rule active (a schedule rule owes no slot of while it was paused)."""
        found = self.rule_or_fail(rule)
        if found["trigger"] == SCHEDULE_TRIGGER and found["state"] != "active":
            self.store.arm_schedule(rule, epoch(self.ctx.clock.now()))  # slots while paused are not owed
        self.store.set_state(rule, "active")

    def pause(self, rule: str) -> None:
        """Make a rule paused: it starts no runs; its runs go on."""
        self.rule_or_fail(rule)
        self.store.set_state(rule, "paused")

    def archive(self, rule: str) -> None:
        """Retire a rule: no new runs, in-flight runs finish; its versions stay."""
        self.rule_or_fail(rule)
        self.store.set_state(rule, "archived")

    def revert(self, rule: str, version: int, author: str | None = None) -> int:
        """Append a new version equal to `version` and make it current; returns its number."""
        current = self.rule_or_fail(rule)
        old = self.store.version(rule, version)
        if old is None:
            raise EngineError(f"rule '{rule}' has no version {version} (it has 1 to {current['version']})")
        if old.get("damaged"):
            raise EngineError(f"{old['damaged']}: cannot revert to it")
        at = format_datetime(self.ctx.clock.now())
        number = self.store.add_version(rule, old["source"], old["bytecode"], old["hash"],
                                        author or f"revert to {version}", at, old["trigger"], current["state"])
        self.store.save_uses(rule, number, self.store.version_uses(rule, version))
        return number

    def versions(self, rule: str) -> list[dict[str, Any]]:
        """The stored versions of a rule, the current one marked."""
        current = self.rule_or_fail(rule)
        return [dict(v, current=v["version"] == current["version"]) for v in self.store.versions(rule)]

    def rules(self) -> list[dict[str, Any]]:
        """Each rule with its current version, state, run counts, and why it is unloadable if it is."""
        counts = self.store.run_counts()
        filtered = self.store.filtered_counts()
        unstarted = self.store.unstarted_counts()
        policy = self.store.policy_counts()
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
            out[-1].update(self.policy_view(r["name"], r["version"], policy.get(r["name"], {})))
            if branches.get(r["name"]):  # the current version's shares name the branches no run took
                loaded = self.load(r["name"], r["version"]) if reason is None else None
                current = policies.splits_of(loaded.code) if loaded is not None else {}
                out[-1]["splits"] = policies.splits_view(branches[r["name"]], current)
        return out

    def policy_view(self, rule: str, version: int, counts: dict[str, int]) -> dict[str, int]:
        """`limited` for a rule with an entry limit (SPEC 2.11): shown when its current version
        (as loaded here) has one, or when it ever limited an event."""
        out = {}
        loaded = self.loaded.get((rule, version))
        if counts.get("limited") or (loaded is not None and loaded.code.limit_keys is not None):
            out["limited"] = counts.get("limited", 0)
        return out

    def rule(self, name: str) -> dict[str, Any]:
        """One rule as `rules` lists it, with its current `source` and its `versions`."""
        self.rule_or_fail(name)
        found = next(r for r in self.rules() if r["name"] == name)
        current = self.store.version(name, found["version"])
        return dict(found, source=current["source"] if current else None, versions=self.versions(name))

    def source(self, rule: str, version: int) -> str:
        """The source text of one stored version of a rule."""
        self.rule_or_fail(rule)
        found = self.store.version(rule, version)
        if found is None:
            raise EngineError(f"rule '{rule}' has no version {version}")
        return found["source"]

    def _unloadable_reason(self, rule: str, version: int) -> str | None:
        """Why a version cannot be loaded, or None: its checksum is verified without decoding it."""
        key = (rule, version)
        if key in self.loaded:
            return None
        if key in self.unloadable:
            return self.unloadable[key]
        row = self.store.version(rule, version)
        return f"version {version} of rule '{rule}' is missing" if row is None else row.get("damaged")

    def _schedule_view(self, rule: str, version: int, state: str) -> dict[str, Any]:
        """`schedule` (as written) and `next_fire` (UTC; null when paused or never again)."""
        loaded = self.load(rule, version)
        if loaded is None or loaded.code.schedule is None:
            return {}
        code = loaded.code
        last = self.store.schedule_slots().get(rule)
        now = self.ctx.clock.now()
        after = min(from_epoch(last), now) if last is not None else now  # a slot past the clock: see Scheduler.slots
        slot = calendar.next_fire(code.schedule, code.timezone, after) if state == "active" else None
        return {"schedule": calendar.describe(code.schedule, code.timezone),
                "next_fire": format_datetime(slot) if slot is not None else None}


# ----------------------------------------------------------------------------- helpers


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


def action_to_data(sig: ActionSig) -> dict[str, Any]:
    """A program's action declaration as stored."""
    return {"params": [{"name": p.name, "type": type_to_data(p.type), "has_default": p.has_default,
                        "default": values.to_json(p.default)} for p in sig.params],
            "result": type_to_data(sig.result) if sig.result is not None else None}


def action_from_data(name: str, data: dict[str, Any]) -> ActionSig:
    """A stored action declaration."""
    params = tuple(ParamSig(p["name"], type_from_data(p["type"]), p["has_default"], p["default"])
                   for p in data["params"])
    result = type_from_data(data["result"]) if data.get("result") else None
    return ActionSig(name, params, result, origin="program")
