"""The durable engine: publish versions, accept events, dispatch them to runs, resume runs when due.

One implementation serves the CLI, the embedding API and `simulate` (an in-memory database, a
simulated clock and recorded actions). See docs/engine.md for how runs, waits, versions, leases,
retries and the journal work.
"""

from __future__ import annotations

import datetime as dt
import inspect
import json
import logging
import os
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from whenthen import values
from whenthen.calendar import SCHEDULE_TRIGGER, epoch
from whenthen.compiler.code import BytecodeError
from whenthen.compiler.decls import ActionSig, ParamSig, Schema, TriggerSchema
from whenthen.compiler.types import Type
from whenthen.diagnostics import EventError
from whenthen.runtime import vm
from whenthen.runtime.actions import Actions, ActionUnavailable, RetryPolicy
from whenthen.runtime.catalog import Catalog, LoadedRule, Published, compiled_hash, field_path, index_key
from whenthen.runtime.clock import Clock, RealClock
from whenthen.runtime.context import Context, EngineError, Queued, dump_values, dumps, storable
from whenthen.runtime.events import lookup_trigger, validate_event
from whenthen.runtime.scheduler import Scheduler
from whenthen.runtime.store import LeaseLost, RunRow, StoreUnavailable, open_store
from whenthen.stdlib.config import StdlibConfig
from whenthen.stdlib.transports import Transports
from whenthen.values import format_datetime

if TYPE_CHECKING:
    from whenthen.api import Program, SourceOrPaths

__all__ = ["MAX_EMIT_DEPTH", "ActionUnavailable", "Engine", "EngineError", "LoadedRule", "Published", "RetryPolicy",
           "action_signature", "compiled_hash", "index_key", "load_actions_module", "load_host_triggers"]

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
class _Start:
    event: Queued
    now: dt.datetime
    exits: list[tuple[str, int, str, str | None, str | None]]


def _shared(name: str, doc: str) -> Any:
    """A property of the engine that is its parts' shared setting `name` (read and set)."""
    return property(lambda self: getattr(self.ctx, name), lambda self, value: setattr(self.ctx, name, value),
                    doc=doc)


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
        self.ctx = Context(self.store, clock or RealClock(), self.config, lease_seconds=lease_seconds,
                           on_trace=on_trace)
        self.catalog = Catalog(self.ctx)
        self.actions = Actions(self.ctx, self.catalog, self.transports, retry or RetryPolicy(), dry_run)
        self.scheduler = Scheduler(self)

    clock = _shared("clock", "The engine's clock (a simulated one in simulate and the REPL).")
    lease_seconds = _shared("lease_seconds", "How long a claim on an event or a run lasts unrenewed.")
    on_trace = _shared("on_trace", "Called with each trace record (simulate, the REPL), or None.")
    owner = _shared("owner", "This engine's name in leases: host:pid:random.")

    @property
    def retry(self) -> RetryPolicy:
        """How often a failing action is tried again."""
        return self.actions.retry

    @property
    def dry_run(self) -> bool:
        """Simulate: actions are recorded; only host actions give results."""
        return self.actions.dry_run

    @property
    def on_action(self) -> Callable[[str, float, bool], None] | None:
        """Called after each action call with (name, seconds, failed): the service's metrics."""
        return self.actions.on_action

    @on_action.setter
    def on_action(self, hook: Callable[[str, float, bool], None] | None) -> None:
        self.actions.on_action = hook

    def close(self) -> None:
        self.store.close()

    # ------------------------------------------------------------------ declarations

    @property
    def schema(self) -> Schema:
        """The stdlib, system triggers and host actions: what to compile a program against."""
        return self.catalog.schema

    def action(self, fn: Callable[..., Any] | None = None, *, name: str | None = None) -> Any:
        """Register a host action (usable as `engine.action(fn)` or `@engine.action`), typed by its
        annotations. A parameter named `idempotency_key` receives the journal's key."""
        def register(func: Callable[..., Any]) -> Callable[..., Any]:
            self.catalog.add_host_action(action_signature(func, name))
            return func
        return register(fn) if fn is not None else register

    def trigger(self, name: str, model: Any) -> TriggerSchema:
        """Declare a host trigger from a pydantic model (or TypedDict, or whenthen Type): rules
        compiled against `engine.schema` may start on it, and `emit` validates its events."""
        from whenthen.runtime.host import trigger_schema

        schema = trigger_schema(name, model)
        self.catalog.add_host_trigger(name, schema)
        return schema

    def unbound_actions(self) -> list[str]:
        """Actions that active rules call, declared in a program, with no implementation here."""
        return self.catalog.unbound_actions()

    def check_bindings(self) -> None:
        """Raise EngineError when an active rule calls a declared action with no implementation,
        unless unbound actions are opted into the outbox (`WHENTHEN_UNBOUND_ACTIONS=outbox`).
        The CLI calls it before `emit`, `ingest` and `worker` run anything; embedders call it once
        after registering their actions."""
        self.catalog.check_bindings()

    def trigger_schema(self, trigger: str) -> TriggerSchema:
        """The schema of a trigger known to this database (EventError if unknown)."""
        return self.catalog.trigger_schema(trigger)

    def triggers(self) -> dict[str, TriggerSchema]:
        """The triggers events may be emitted on (declared by published programs or the host),
        by name; not the ones the engine fires itself (schedules, `run.failed`, …)."""
        return self.catalog.emittable_triggers()

    def rule(self, name: str) -> dict[str, Any]:
        """One rule as `rules` lists it, with its current `source` and its `versions`."""
        return self.catalog.rule(name)

    def source(self, rule: str, version: int) -> str:
        """The source text of one stored version of a rule."""
        return self.catalog.source(rule, version)

    # ------------------------------------------------------------------ versions

    def publish(self, program: Program | SourceOrPaths, author: str | None = None, enable: bool = False,
                prune: bool = False) -> list[Published]:
        """Store a new version of each rule whose compiled form changed. New rules start paused
        unless `enable`; an existing rule keeps its state (or becomes active with `enable`).
        With `prune`, the stored rules the program no longer has (left out, or renamed) are
        archived in the same transaction (SPEC 3: `publish … --prune`).
        A compiled Program carries everything stored (bytecode and its trigger uses); source is
        compiled against this database's declarations first. One transaction: all or nothing."""
        return self.catalog.publish(program, author, enable, prune)

    def enable(self, rule: str) -> None:
        self.catalog.enable(rule)

    def pause(self, rule: str) -> None:
        self.catalog.pause(rule)

    def archive(self, rule: str) -> None:
        """Retire a rule (SPEC 3): no new runs, in-flight runs finish, hidden from listings unless
        asked for; its versions stay, and `enable` brings it back."""
        self.catalog.archive(rule)

    def revert(self, rule: str, version: int, author: str | None = None) -> int:
        """Append a new version equal to `version` and make it current; returns its number."""
        return self.catalog.revert(rule, version, author)

    def versions(self, rule: str) -> list[dict[str, Any]]:
        return self.catalog.versions(rule)

    def rules(self) -> list[dict[str, Any]]:
        return self.catalog.rules()

    def uses(self, trigger: str) -> list[dict[str, Any]]:
        """Where a trigger is started on (`start`), awaited (`await`), exited on (`exit`) or emitted.
        An unknown trigger is an EngineError (as an unknown rule is for `versions`), not an empty list."""
        return self.catalog.uses(trigger)

    # ------------------------------------------------------------------ events in

    def emit(self, trigger: str, data: Any, *, dispatch: bool = True, origin: str = "external") -> int:
        """Validate and record one event, dispatch it, and run what it starts or resumes until every
        run waits or ends; returns the event's id. Raises EventError (after recording the
        rejection) on bad data. With `dispatch=False` the event is only queued for workers."""
        self.catalog.refresh()
        now = self.clock.now()
        try:
            schema = lookup_trigger(self.catalog.triggers, trigger)
            if schema.origin in ("schedule", "system") and origin == "external":
                raise EventError(f"'{trigger}' is fired by the engine; it cannot be emitted", trigger=trigger)
            typed = validate_event(schema, data)
        except EventError as exc:
            self._reject(trigger, data, now, str(exc))
            raise
        with self.store.batch():  # one commit for the event and what it does (until an action's effect)
            text = dump_values(typed)
            if dispatch:  # `processing` under our lease if anything commits before its dispatch ends
                event_id = self.store.open_event(trigger, text, format_datetime(now), origin, self.ctx.owner,
                                                 time.time() + self.lease_seconds)
            else:
                event_id = self.store.insert_event(trigger, text, format_datetime(now), "pending", origin=origin)
            if dispatch:
                self.ctx.budget = self.ctx.new_budget()
                self._process(Queued(event_id, trigger, typed, 0))
                self._drain()
        return event_id

    def accept(self, trigger: str, data: Any, *, idempotency_key: str | None = None) -> tuple[int, bool]:
        """Validate an event and record it `pending` for the workers (no dispatch here); returns
        (event id, duplicate). The idempotency key is recorded in the event's transaction: the same
        key within 24 h returns the first event's id and records nothing. Raises EventError (after
        recording the rejection) with `.errors` naming every bad field."""
        self.catalog.refresh()
        now = self.clock.now()
        try:
            schema = lookup_trigger(self.catalog.triggers, trigger)
            if schema.origin in ("schedule", "system"):
                raise EventError(f"'{trigger}' is fired by the engine; it cannot be emitted", trigger=trigger)
            typed = validate_event(schema, data)
        except EventError as exc:
            self._reject(trigger, data, now, str(exc))
            raise
        return self.store.accept_event(trigger, dump_values(typed), format_datetime(now),
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
        text = data if isinstance(data, str) else dumps(data, lenient=True)
        # what was refused may hold lone surrogates, which no UTF-8 column can store: escaped
        name = storable(trigger) if isinstance(trigger, str) else None
        self.store.insert_event(name, storable(text[:10_000]), format_datetime(now), "rejected",
                                error=storable(error))

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
            self.catalog.refresh()
            with self.store.batch():
                run = self.store.claim_next_due_run(epoch(self.clock.now()), time.time(), self.ctx.owner,
                                                    time.time() + self.lease_seconds)
                if run is None:
                    break
                self.ctx.budget = self.ctx.new_budget()
                self._resume_claimed(run)
                self._drain()
            done += 1
        return done

    def process_pending(self, limit: int | None = None) -> int:
        """Dispatch events that were recorded but not processed (enqueued, emitted by another
        process, or left by a worker that died); returns how many."""
        count = 0
        while (limit is None or count < limit) and self.store.has_claimable_event(time.time()):
            self.catalog.refresh()
            with self.store.batch():
                row = self.store.claim_next_event(self.ctx.owner, time.time(), time.time() + self.lease_seconds)
                if row is None:
                    break
                event_id, trigger, data, _at, depth = row
                try:
                    typed = validate_event(lookup_trigger(self.catalog.triggers, trigger), json.loads(data))
                except (EventError, ValueError) as exc:
                    self.store.reject_event(event_id, str(exc))
                    continue
                self.ctx.budget = self.ctx.new_budget()
                self._process(Queued(event_id, trigger, typed, depth))
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
                self.ctx.queue.clear()
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
        while self.ctx.queue:
            item = self.ctx.queue.popleft()
            held = item.event_id in self.ctx.held
            self.ctx.held.discard(item.event_id)
            if held or self.store.claim_event(item.event_id, self.ctx.owner, time.time(),
                                              time.time() + self.lease_seconds):
                self._process(item)
                self.ctx.budget.work += 1
                if self.ctx.queue:
                    self._maybe_commit_chunk()
        self.ctx.held.clear()

    def _maybe_commit_chunk(self) -> None:
        """Commit a long cascade in chunks (CASCADE_CHUNK units or CASCADE_CHUNK_SECONDS), so
        other writers are never blocked for long. The events still queued are leased to this
        process first, so no other worker takes them (each with a budget of its own) meanwhile."""
        budget = self.ctx.budget
        if budget.work < CASCADE_CHUNK and time.monotonic() - budget.since < CASCADE_CHUNK_SECONDS:
            return
        expires = time.time() + self.lease_seconds
        for item in self.ctx.queue:
            if item.event_id not in self.ctx.held and self.store.claim_event(item.event_id, self.ctx.owner, time.time(),
                                                                          expires):
                self.ctx.held.add(item.event_id)
        self.store.commit_now()
        if self.store.shared:  # a file other processes write to: let a waiting writer in
            time.sleep(CASCADE_PAUSE_SECONDS)
        budget.work, budget.since = 0, time.monotonic()

    def _process(self, event: Queued) -> None:
        """One event: exits first, then matching `wait for`s, then the rules it starts. Callers
        `_refresh()` first (once per transaction: inside it, no other process can publish)."""
        trigger, data = event.trigger, event.data
        now = self.clock.now()
        # Both kinds of candidates are read before anything runs: a wait that begins while this
        # event is processed cannot match it (and an exited run is skipped by _try_resume).
        exits, waits = self.store.dispatch_candidates(trigger, lambda f: index_key(field_path(data, f)))
        for run_id, clause in exits:
            self._try_exit(run_id, clause, data, now)
        for run_id, _ in waits:
            self._try_resume(run_id, event, now)
        filtered: dict[tuple[str, int], int] = defaultdict(int)
        seen = None
        unstarted = None
        missed = self.catalog.unloadable_on.get(trigger)
        if missed:  # active versions that cannot be loaded: the event is counted as not started by them
            target = self.store.schedule_rule(event.event_id) if trigger == SCHEDULE_TRIGGER else None
            unstarted = {key: 1 for key in missed if target is None or key[0] == target} or None
        if trigger == SCHEDULE_TRIGGER:
            target = self.store.schedule_rule(event.event_id)
            for loaded in self.catalog.active.get(trigger, ()):
                if loaded.name != target:
                    continue  # a schedule event starts only the rule whose slot it is
                if loaded.accepts(data):
                    self._start(loaded, event, now)
                else:
                    filtered[(loaded.name, loaded.version)] += 1
        elif (group := self.catalog.starts.get(trigger)) is not None:
            # Only rules whose required `field = constant` the event satisfies are evaluated; the
            # others are filtered, which the store derives from `seen` (one row per event).
            for loaded in group.candidates(data):
                if loaded.accepts(data):
                    self._start(loaded, event, now)
            seen = (trigger, group.set_id)
        self.store.finish_event(event.event_id, self.ctx.owner, filtered, seen, unstarted)

    def _try_exit(self, run_id: int, clause: int, data: dict[str, Any], now: dt.datetime) -> None:
        run = self.store.get_run(run_id)
        if run is None or run.status in ENDED:
            return
        loaded = self.catalog.load(run.rule, run.version)
        frame = _decode_frame(run.frame)
        if loaded is None or frame is None:  # it cannot be evaluated: failed visibly, never skipped
            self._fail_damaged(run, loaded)
            return
        if not vm.exit_matches(loaded.code, clause, frame.event, data, now=now):
            return
        at = format_datetime(now)
        step = {"ordinal": 1_000_000, "at": at, "kind": "exit",
                "data": dumps({"trigger": loaded.code.exits[clause].trigger, "event": values.to_json(data)})}
        if self.store.exit_run(run_id, at, [step]):
            self.ctx.trace({"kind": "run", "at": at, "rule": run.rule, "run": run.id, "status": "exited"})

    def _try_resume(self, run_id: int, event: Queued, now: dt.datetime) -> None:
        run = self.store.get_run(run_id)
        if run is None or run.status != "waiting":
            return
        loaded = self.catalog.load(run.rule, run.version)
        frame = _decode_frame(run.frame)
        if loaded is None or frame is None:  # it cannot be evaluated: failed visibly, never skipped
            self._fail_damaged(run, loaded)
            return
        if not vm.wait_matches(loaded.code, frame, event.data, now=now):
            return
        claimed = self.store.claim_run(run, self.ctx.owner, time.time(), time.time() + self.lease_seconds,
                                       resume_event=event.event_id)
        if claimed is not None:
            self._activate(claimed, loaded, frame, event.data)

    def _start(self, loaded: LoadedRule, event: Queued, now: dt.datetime) -> None:
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
        budget = self.ctx.budget
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
                                    event.depth, format_datetime(start.now), self.ctx.owner,
                                    time.time() + self.lease_seconds, start.exits)
        if run is None:
            return False
        act.run = run
        return True

    def _resume_claimed(self, run: RunRow) -> None:
        """Continue a run claimed by run_due: a timer came, or a crash interrupted it."""
        loaded = self.catalog.load(run.rule, run.version)
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
                    resume = validate_event(lookup_trigger(self.catalog.triggers, row["trigger"]), json.loads(row["data"]))
                except (EventError, ValueError):
                    resume = None
        self._activate(run, loaded, frame, resume)

    def _why_unloadable(self, run: RunRow, loaded: LoadedRule | None) -> str:
        if run.damaged:
            return run.damaged
        if loaded is None:
            return self.catalog.unloadable.get((run.rule, run.version), f"version {run.version} of rule '{run.rule}' is missing")
        return f"run {run.id} has no snapshot"

    def _fail_damaged(self, run: RunRow, loaded: LoadedRule | None) -> None:
        """A waiting run an event concerns whose snapshot or code cannot be used: claim and fail it."""
        claimed = self.store.claim_run(run, self.ctx.owner, time.time(), time.time() + self.lease_seconds)
        if claimed is not None:
            self._fail_unloadable(claimed, self._why_unloadable(run, loaded))

    def _fail_unloadable(self, run: RunRow, error: str) -> None:
        """Fail a claimed run that cannot continue (damaged snapshot, unloadable version), with an
        error step and `run.failed`; its snapshot is not kept."""
        at = format_datetime(self.clock.now())
        step = {"ordinal": 1_000_000, "at": at, "kind": "error", "data": dumps({"error": error})}
        emits = []
        if run.depth <= MAX_EMIT_DEPTH:
            emits.append(("run.failed", dumps({"rule": run.rule, "run_id": str(run.id), "error": error}),
                          run.depth + 1, "system"))
        try:
            ids = self.store.commit_activation(run, status="failed", frame=None, deadline=None, wait_trigger=None,
                                               waits=[], steps=[step], error=error, at=at, emits=emits)
        except LeaseLost:
            return
        for event_id, (trigger, data, depth, _origin) in zip(ids, emits, strict=True):
            self.ctx.queue.append(Queued(event_id, trigger, json.loads(data), depth))
        self.ctx.trace({"kind": "run", "at": at, "rule": run.rule, "run": run.id, "status": "failed", "error": error})

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
        emits = [(t, dumps(values.to_json(d)), depth, origin) for t, d, depth, origin in act.emits]
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
            self.ctx.queue.append(Queued(event_id, trigger, data, depth))
        if act.branches:  # SPEC 2.13: per split, the runs each branch took
            self.store.count_branches(run.rule, run.version, list(dict.fromkeys(act.branches)))
        record = {"kind": "run", "at": at, "rule": run.rule, "run": run.id, "status": status}
        if error:
            record["error"] = error
        self.ctx.trace(record)

    # ------------------------------------------------------------------ reading runs

    def runs(self, rule: str | None = None, status: str | None = None) -> list[dict[str, Any]]:
        """Runs with `id`, `rule`, `version`, `status`, `started_at`, `updated_at`, …; an unknown
        `rule` is an EngineError (a misspelt name must not look like a rule without runs)."""
        if rule is not None:
            self.catalog.rule_or_fail(rule)
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
        self.ctx.budget = self.ctx.new_budget()
        self._process(Queued(event_id, SCHEDULE_TRIGGER, data, 0))
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
            return self.engine.actions.call(self.act, name, args, step)
        except LeaseLost:
            self.act.lease_lost = True
            raise vm.HostAbort() from None
        except StoreUnavailable as exc:  # the VM would fail the run for it: stop the activation instead
            self.act.store_lost = exc
            raise vm.HostAbort() from None

    def emit(self, trigger: str, data: dict[str, Any], depth: int) -> None:
        engine = self.engine
        budget = engine.ctx.budget
        if budget.events <= 0:
            raise RuntimeError(budget.refusal("events emitted", engine.config.fan_out_events))
        budget.events -= 1
        schema = engine.catalog.triggers.get(trigger)
        typed = validate_event(schema, data) if schema is not None else data
        try:
            if not engine._materialize(self.act):  # the trace names the run
                raise vm.HostAbort()
        except StoreUnavailable as exc:
            self.act.store_lost = exc
            raise vm.HostAbort() from None
        run = self.act.run
        engine.ctx.trace({"kind": "emit", "at": format_datetime(self.now()), "rule": run.rule, "run": run.id,
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
            self.engine.ctx.trace({"kind": "branch", "at": format_datetime(self.now()), "rule": run.rule,
                                   "run": self.run_id(), "split": step["split"], "case": step["case"],
                                   "share": step["share"]})
        data = {k: v for k, v in step.items() if k != "kind"}
        self.act.steps.append({"ordinal": self.act.ordinal, "at": format_datetime(self.now()),
                               "kind": step.get("kind", "step"), "data": dump_values(data)})
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
