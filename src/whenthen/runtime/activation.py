"""Activation: running a run's frame to its next suspension, end or failure; the VM's run host."""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass, field
from typing import Any

from whenthen import values
from whenthen.calendar import epoch
from whenthen.compiler.code import BytecodeError
from whenthen.diagnostics import EventError
from whenthen.runtime import vm
from whenthen.runtime.actions import Actions
from whenthen.runtime.catalog import Catalog, LoadedRule, index_key
from whenthen.runtime.context import Context, Queued, dump_values, dumps
from whenthen.runtime.events import lookup_trigger, validate_event
from whenthen.runtime.store import LeaseLost, RunRow, StoreUnavailable
from whenthen.values import format_datetime

MAX_EMIT_DEPTH = vm.MAX_EMIT_DEPTH
_FAILURE_TRIGGERS = ("run.failed", "action.failed")


@dataclass
class Activation:
    """What one activation of a run produced, committed together at its end."""

    run: RunRow
    loaded: LoadedRule
    steps: list[dict[str, Any]] = field(default_factory=list)  # not yet written
    emits: list[tuple[str, dict[str, Any], int, str]] = field(default_factory=list)
    ordinal: int = 0
    lease_lost: bool = False
    store_lost: StoreUnavailable | None = None  # the database went away mid-activation: re-raised
    # A new run is not stored before its first activation needs it (`Activator.materialize`): until
    # then `run.id` is 0 and this holds what `Store.create_run` needs.
    start: Start | None = None
    branches: list[tuple[int, int, int]] = field(default_factory=list)  # (split, case, share) taken


@dataclass
class Start:
    """A new run not stored yet: the event that starts it, when, and its exit clauses."""

    event: Queued
    now: dt.datetime
    exits: list[tuple[str, int, str, str | None, str | None]]
    entry: str | None = None  # the `once per` key this run takes (SPEC 2.11), recorded once it is stored



class Activator:
    """Runs activations: a new run from its start, a claimed run from its snapshot (with the event
    that resumed it); commits snapshot, waits, steps and emits at its end, and queues the emits."""

    def __init__(self, ctx: Context, catalog: Catalog, actions: Actions):
        self.ctx = ctx
        self.store = ctx.store
        self.catalog = catalog
        self.actions = actions

    def materialize(self, act: Activation) -> bool:
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
                                    self.ctx.lease_expiry(), start.exits)
        if run is None:
            return False
        act.run = run
        return True

    def resume_claimed(self, run: RunRow) -> None:
        """Continue a run claimed by run_due: a timer came, or a crash interrupted it."""
        loaded = self.catalog.load(run.rule, run.version)
        if loaded is None or run.frame is None:
            self.fail_unloadable(run, self.why_unloadable(run, loaded))
            return
        try:
            frame = vm.Frame.decode(run.frame)
        except BytecodeError as exc:
            self.fail_unloadable(run, f"run {run.id}: {exc}")
            return
        resume = None
        if run.resume_event is not None:
            row = self.store.event(run.resume_event)
            if row is not None:
                try:
                    resume = validate_event(lookup_trigger(self.catalog.triggers, row["trigger"]), json.loads(row["data"]))
                except (EventError, ValueError):
                    resume = None
        self.activate(run, loaded, frame, resume)

    def why_unloadable(self, run: RunRow, loaded: LoadedRule | None) -> str:
        if run.damaged:
            return run.damaged
        if loaded is None:
            return self.catalog.unloadable.get((run.rule, run.version), f"version {run.version} of rule '{run.rule}' is missing")
        return f"run {run.id} has no snapshot"

    def fail_damaged(self, run: RunRow, loaded: LoadedRule | None) -> None:
        """A waiting run an event concerns whose snapshot or code cannot be used: claim and fail it."""
        claimed = self.store.claim_run(run, self.ctx.owner, time.time(), self.ctx.lease_expiry())
        if claimed is not None:
            self.fail_unloadable(claimed, self.why_unloadable(run, loaded))

    def fail_unloadable(self, run: RunRow, error: str) -> None:
        """Fail a claimed run that cannot continue (damaged snapshot, unloadable version), with an
        error step and `run.failed`; its snapshot is not kept."""
        at = format_datetime(self.ctx.clock.now())
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

    def activate(self, run: RunRow, loaded: LoadedRule, frame: vm.Frame, resume: Any,
                  start: Start | None = None, refused: str | None = None) -> None:
        """Run until the run waits, ends or fails; commit snapshot, waits, steps and emits at once.
        A run `refused` (past the fan-out budget) fails at once with that reason."""
        act = Activation(run, loaded, start=start)
        host = RunHost(self, act)
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
        now = self.ctx.clock.now()
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
            if not self.materialize(act):  # run.failed names the run
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
        if start is not None and start.entry is not None:  # SPEC 2.11: the last start for this key
            self.store.record_entry(run.rule, start.entry, epoch(start.now), run.id)
        if act.branches:  # SPEC 2.13: per split, the runs each branch took
            self.store.count_branches(run.rule, run.version, list(dict.fromkeys(act.branches)))
        record = {"kind": "run", "at": at, "rule": run.rule, "run": run.id, "status": status}
        if error:
            record["error"] = error
        self.ctx.trace(record)



class RunHost:
    """The VM's Host for one activation: the clock, journaled actions, buffered emits and steps."""

    def __init__(self, activator: Activator, act: Activation):
        self.activator = activator
        self.act = act

    def now(self) -> dt.datetime:
        return self.activator.ctx.clock.now()

    def call_action(self, name: str, args: dict[str, Any], step: int, due: dt.datetime | None = None) -> Any:
        try:
            if not self.activator.materialize(self.act):  # the journal names the run
                raise vm.HostAbort()
            return self.activator.actions.call(self.act, name, args, step, due)
        except LeaseLost:
            self.act.lease_lost = True
            raise vm.HostAbort() from None
        except StoreUnavailable as exc:  # the VM would fail the run for it: stop the activation instead
            self.act.store_lost = exc
            raise vm.HostAbort() from None

    def emit(self, trigger: str, data: dict[str, Any], depth: int) -> None:
        activator = self.activator
        budget = activator.ctx.budget
        if budget.events <= 0:
            raise RuntimeError(budget.refusal("events emitted", activator.ctx.config.fan_out_events))
        budget.events -= 1
        schema = activator.catalog.triggers.get(trigger)
        typed = validate_event(schema, data) if schema is not None else data
        try:
            if not activator.materialize(self.act):  # the trace names the run
                raise vm.HostAbort()
        except StoreUnavailable as exc:
            self.act.store_lost = exc
            raise vm.HostAbort() from None
        run = self.act.run
        activator.ctx.trace({"kind": "emit", "at": format_datetime(self.now()), "rule": run.rule, "run": run.id,
                       "trigger": trigger, "data": values.to_json(typed)})
        self.act.emits.append((trigger, typed, depth, "emit"))

    def run_id(self) -> int:
        """The run's id (a `split` without `by` hashes it): the run is stored first if it is new."""
        try:
            if not self.activator.materialize(self.act):
                raise vm.HostAbort()
        except StoreUnavailable as exc:
            self.act.store_lost = exc
            raise vm.HostAbort() from None
        return self.act.run.id

    def on_step(self, step: dict[str, Any]) -> None:
        if step.get("kind") == "branch" and "split" in step:
            self.act.branches.append((step["split"], step["case"], step["share"]))
            run = self.act.run
            self.activator.ctx.trace({"kind": "branch", "at": format_datetime(self.now()), "rule": run.rule,
                                   "run": self.run_id(), "split": step["split"], "case": step["case"],
                                   "share": step["share"]})
        data = {k: v for k, v in step.items() if k != "kind"}
        self.act.steps.append({"ordinal": self.act.ordinal, "at": format_datetime(self.now()),
                               "kind": step.get("kind", "step"), "data": dump_values(data)})
        self.act.ordinal += 1


# ----------------------------------------------------------------------------- helpers


def decode_frame(blob: bytes | None) -> vm.Frame | None:
    """A run's snapshot, or None when it is missing or unreadable (that run is skipped, not fatal)."""
    if blob is None:
        return None
    try:
        return vm.Frame.decode(blob)
    except BytecodeError:
        return None

