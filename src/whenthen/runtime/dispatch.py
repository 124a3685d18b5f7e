"""Dispatch: one event in; the runs it exits, the waits it resumes, the rules it starts; cascades."""

from __future__ import annotations

import datetime as dt
import time
from collections import defaultdict
from typing import Any

from whenthen import values
from whenthen.calendar import SCHEDULE_TRIGGER, epoch
from whenthen.runtime import policies, vm
from whenthen.runtime.activation import Activator, Start, decode_frame
from whenthen.runtime.catalog import Catalog, LoadedRule, field_path, index_key
from whenthen.runtime.context import Context, Queued, dumps
from whenthen.runtime.store import RunRow
from whenthen.values import format_datetime

# A cascade commits at least this often (units of work: events dispatched, runs started), so
# that no dispatch holds the write lock for long, and pauses after each commit so that another
# process's writer gets the lock (SQLite's busy handler polls, it does not queue).
CASCADE_CHUNK = 200
CASCADE_CHUNK_SECONDS = 0.05
CASCADE_PAUSE_SECONDS = 0.005
ENDED = ("completed", "failed", "exited")


class Dispatcher:
    """Dispatches events: each under a fresh fan-out budget, with the cascade it causes (the
    events its runs emit), committed in chunks; runs through the activator."""

    def __init__(self, ctx: Context, catalog: Catalog, activator: Activator):
        self.ctx = ctx
        self.store = ctx.store
        self.catalog = catalog
        self.activator = activator

    def dispatch(self, event: Queued) -> None:
        """Dispatch one claimed event and its cascade, under a fresh fan-out budget. Callers
        refresh the catalog first (once per transaction)."""
        self.ctx.budget = self.ctx.new_budget()
        self.process(event)
        self.drain()

    def drain(self) -> None:
        """Dispatch queued emitted events, first in first out, at the current instant."""
        while self.ctx.queue:
            item = self.ctx.queue.popleft()
            held = item.event_id in self.ctx.held
            self.ctx.held.discard(item.event_id)
            if held or self.store.claim_event(item.event_id, self.ctx.owner, time.time(),
                                              self.ctx.lease_expiry()):
                self.process(item)
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
        expires = self.ctx.lease_expiry()
        for item in self.ctx.queue:
            if item.event_id not in self.ctx.held and self.store.claim_event(item.event_id, self.ctx.owner, time.time(),
                                                                          expires):
                self.ctx.held.add(item.event_id)
        self.store.commit_now()
        if self.store.shared:  # a file other processes write to: let a waiting writer in
            time.sleep(CASCADE_PAUSE_SECONDS)
        budget.work, budget.since = 0, time.monotonic()

    def process(self, event: Queued) -> None:
        """One event: exits first, then matching `wait for`s, then the rules it starts. Callers
        `catalog.refresh()` first (once per transaction: inside it, no other process can publish)."""
        trigger, data = event.trigger, event.data
        now = self.ctx.clock.now()
        # Both kinds of candidates are read before anything runs: a wait that begins while this
        # event is processed cannot match it (and an exited run is skipped by _try_resume).
        exits, waits = self.store.dispatch_candidates(trigger, lambda f: index_key(field_path(data, f)))
        for run_id, clause in exits:
            self.try_exit(run_id, clause, data, now)
        for run_id, _ in waits:
            self.try_resume(run_id, event, now)
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
                    self.start(loaded, event, now)
                else:
                    filtered[(loaded.name, loaded.version)] += 1
        elif (group := self.catalog.starts.get(trigger)) is not None:
            # Only rules whose required `field = constant` the event satisfies are evaluated; the
            # others are filtered, which the store derives from `seen` (one row per event).
            for loaded in group.candidates(data):
                if loaded.accepts(data):
                    self.start(loaded, event, now)
            seen = (trigger, group.set_id)
        self.store.finish_event(event.event_id, self.ctx.owner, filtered, seen, unstarted)

    def _evaluable(self, run: Any) -> tuple[Any, Any] | None:
        """The run's code and frame, or None after failing the run: one that cannot be evaluated
        fails visibly, it is never skipped."""
        loaded = self.catalog.load(run.rule, run.version)
        frame = decode_frame(run.frame)
        if loaded is None or frame is None:
            self.activator.fail_damaged(run, loaded)
            return None
        return loaded, frame

    def try_exit(self, run_id: int, clause: int, data: dict[str, Any], now: dt.datetime) -> None:
        run = self.store.get_run(run_id)
        if run is None or run.status in ENDED or (evaluable := self._evaluable(run)) is None:
            return
        loaded, frame = evaluable
        if not vm.exit_matches(loaded.code, clause, frame.event, data, now=now):
            return
        at = format_datetime(now)
        step = {"ordinal": 1_000_000, "at": at, "kind": "exit",
                "data": dumps({"trigger": loaded.code.exits[clause].trigger, "event": values.to_json(data)})}
        if self.store.exit_run(run_id, at, [step]):
            self.ctx.trace({"kind": "run", "at": at, "rule": run.rule, "run": run.id, "status": "exited"})

    def try_resume(self, run_id: int, event: Queued, now: dt.datetime) -> None:
        run = self.store.get_run(run_id)
        if run is None or run.status != "waiting" or (evaluable := self._evaluable(run)) is None:
            return
        loaded, frame = evaluable
        if not vm.wait_matches(loaded.code, frame, event.data, now=now):
            return
        claimed = self.store.claim_run(run, self.ctx.owner, time.time(), self.ctx.lease_expiry(),
                                       resume_event=event.event_id)
        if claimed is not None:
            self.activator.activate(claimed, loaded, frame, event.data)

    def start(self, loaded: LoadedRule, event: Queued, now: dt.datetime) -> None:
        """Start a run of `loaded` for `event`. The run row is written when the first activation
        needs it (an action, an emit, a failure: `Activator.materialize`), else once, in its final state,
        with the activation's other rows (`Store.store_new_run`); the transaction is the same."""
        code = loaded.code
        entry = None
        if code.limit_keys is not None:  # SPEC 2.11: one key lookup decides
            entry = policies.entry_key(code, event.data, now)
            if entry is not None and policies.limited_by(self.store, loaded.name, entry, code.limit_within,
                                                         epoch(now)) is not None:
                self.store.add_counts("limited", {(loaded.name, loaded.version): 1})
                return
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
            refused = budget.refusal("runs started", self.ctx.config.fan_out_runs)
        budget.runs -= 1
        budget.work += 1
        self.activator.activate(run, loaded, frame, None, Start(event, now, exits, entry), refused=refused)

