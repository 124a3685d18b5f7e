"""The durable engine: publish versions, accept events, dispatch them to runs, resume runs when due.

One implementation serves the CLI, the embedding API and `simulate` (an in-memory database, a
simulated clock and recorded actions). See docs/engine.md for how runs, waits, versions, leases,
retries and the journal work.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from whenthen.compiler.decls import Schema, TriggerSchema
from whenthen.diagnostics import EventError
from whenthen.runtime.actions import Actions, ActionUnavailable, RetryPolicy
from whenthen.runtime.activation import MAX_EMIT_DEPTH, Activator
from whenthen.runtime.catalog import Catalog, LoadedRule, Published, compiled_hash, index_key
from whenthen.runtime.clock import Clock, RealClock
from whenthen.runtime.context import Context, EngineError
from whenthen.runtime.dispatch import Dispatcher
from whenthen.runtime.explain import Explainer
from whenthen.runtime.history import History
from whenthen.runtime.host import action_signature, load_actions_module, load_host_triggers
from whenthen.runtime.intake import Intake
from whenthen.runtime.scheduler import Scheduler
from whenthen.runtime.store import open_store
from whenthen.runtime.worker import Worker
from whenthen.stdlib.config import StdlibConfig
from whenthen.stdlib.transports import Transports

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
        self.intake = Intake(self.ctx, self.catalog, self.dispatcher)
        self.history = History(self.ctx, self.catalog)
        self.explainer = Explainer(self.ctx, self.catalog)

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

    # ------------------------------------------------------------------ events in (runtime/intake.py)

    def emit(self, trigger: str, data: Any, *, dispatch: bool = True, origin: str = "external") -> int:
        """Validate and record one event, dispatch it, and run what it starts or resumes until every
        run waits or ends; returns the event's id. Raises EventError (after recording the
        rejection) on bad data. With `dispatch=False` the event is only queued for workers."""
        return self.intake.emit(trigger, data, dispatch=dispatch, origin=origin)

    def accept(self, trigger: str, data: Any, *, idempotency_key: str | None = None) -> tuple[int, bool]:
        """Validate an event and record it `pending` for the workers (no dispatch here); returns
        (event id, duplicate). The idempotency key is recorded in the event's transaction: the same
        key within 24 h returns the first event's id and records nothing. Raises EventError (after
        recording the rejection) with `.errors` naming every bad field."""
        return self.intake.accept(trigger, data, idempotency_key=idempotency_key)

    def accept_batch(self, items: Iterable[tuple[Any, Any]]) -> list[int | EventError]:
        """`accept` for each (trigger, data), the accepted ones committed in one transaction;
        one result per item, in order: the event id, or the EventError that rejected it."""
        return self.intake.accept_batch(items)

    def reject(self, trigger: str | None, data: Any, error: str) -> None:
        """Record an event that could not even be read (bad JSON, no trigger)."""
        self.intake.reject(trigger, data, error)

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
        return self.intake.ingest(lines, on_line, commit_every, keep_rejected)

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

    # ------------------------------------------------------------------ reading runs (runtime/history.py)

    def runs(self, rule: str | None = None, status: str | None = None) -> list[dict[str, Any]]:
        """Runs with `id`, `rule`, `version`, `status`, `started_at`, `updated_at`, …; an unknown
        `rule` is an EngineError (a misspelt name must not look like a rule without runs)."""
        return self.history.runs(rule, status)

    def runs_page(self, rule: str | None = None, status: str | None = None, before: int | None = None,
                  limit: int = 50) -> list[dict[str, Any]]:
        """The `runs` objects newest first, ids below `before`: one page, found by keyset."""
        return self.history.runs_page(rule, status, before, limit)

    def run(self, run_id: int) -> dict[str, Any]:
        """One run with its `steps` (time, kind, and for actions the args, result and error)."""
        return self.history.run(run_id)

    def outbox(self) -> list[dict[str, Any]]:
        """The outbox: each effect's row with its args."""
        return self.history.outbox()

    def events(self, status: str | None = None) -> list[dict[str, Any]]:
        """Every stored event (with `status`)."""
        return self.history.events(status)

    def event(self, event_id: int) -> dict[str, Any]:
        """One event: `{"id", "trigger", "data", "status", "received_at", "error"}`."""
        return self.history.event(event_id)

    def events_page(self, status: str | None = None, before: int | None = None, limit: int = 50
                    ) -> list[dict[str, Any]]:
        """Events as `event` shows them, newest first, ids below `before` (keyset)."""
        return self.history.events_page(status, before, limit)

    def explain(self, rule: str | int, event_id: int | None = None) -> dict[str, Any]:
        """SPEC 2.14: `explain(RULE, EVENT_ID)`, what the rule did with the event and why, against the
        version active when it was processed; `explain(RUN_ID)`, what the run is doing (runtime/explain.py)."""
        return self.explainer.explain(rule, event_id)

    # ------------------------------------------------------------------ schedules

    def next_schedule_slot(self) -> dt.datetime | None:
        """The earliest slot not yet fired of any active schedule rule (runtime/scheduler.py)."""
        return self.scheduler.next_slot()

    def fire_schedules(self, until: dt.datetime | None = None) -> int:
        """Fire each active schedule rule's latest due slot, once (runtime/scheduler.py)."""
        return self.scheduler.fire(until)
