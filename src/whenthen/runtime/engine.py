"""The durable engine: publish versions, accept events, dispatch them to runs, resume runs when due.

One implementation serves the CLI, the embedding API and `simulate` (an in-memory database, a
simulated clock and recorded actions). See docs/engine.md for how runs, waits, versions, leases,
retries and the journal work.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from whenthen import values
from whenthen.compiler.decls import Schema, TriggerSchema
from whenthen.diagnostics import EventError
from whenthen.runtime.actions import Actions, ActionUnavailable, RetryPolicy
from whenthen.runtime.activation import MAX_EMIT_DEPTH, Activator
from whenthen.runtime.catalog import Catalog, LoadedRule, Published, compiled_hash, index_key
from whenthen.runtime.clock import Clock, RealClock
from whenthen.runtime.context import Context, EngineError, Queued, dump_values, dumps, storable
from whenthen.runtime.dispatch import Dispatcher
from whenthen.runtime.events import lookup_trigger, validate_event
from whenthen.runtime.host import action_signature, load_actions_module, load_host_triggers
from whenthen.runtime.scheduler import Scheduler
from whenthen.runtime.store import open_store
from whenthen.runtime.worker import Worker
from whenthen.stdlib.config import StdlibConfig
from whenthen.stdlib.transports import Transports
from whenthen.values import format_datetime

if TYPE_CHECKING:
    from whenthen.api import Program, SourceOrPaths

__all__ = ["MAX_EMIT_DEPTH", "ActionUnavailable", "Engine", "EngineError", "LoadedRule", "Published", "RetryPolicy",
           "action_signature", "compiled_hash", "index_key", "load_actions_module", "load_host_triggers"]

_log = logging.getLogger("whenthen.engine")
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
        self.activator = Activator(self.ctx, self.catalog, self.actions)
        self.dispatcher = Dispatcher(self.ctx, self.catalog, self.activator)
        self.scheduler = Scheduler(self.ctx, self.catalog, self.dispatcher)
        self.worker = Worker(self.ctx, self.catalog, self.activator, self.dispatcher, self.scheduler)

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
                self.dispatcher.dispatch(Queued(event_id, trigger, typed, 0))
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
        return self.worker.run_due(limit)

    def process_pending(self, limit: int | None = None) -> int:
        """Dispatch events that were recorded but not processed (enqueued, emitted by another
        process, or left by a worker that died); returns how many."""
        return self.worker.process_pending(limit)

    def work(self, once: bool = False, idle: float = 0.5, stop: Callable[[], bool] | None = None) -> int:
        """The worker loop: pending events and due runs, until `stop()` (or one pass with `once`)."""
        return self.worker.work(once, idle, stop)

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
