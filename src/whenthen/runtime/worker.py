"""The worker: claims pending events and due runs, fires schedules, idles until there is work."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable

from whenthen.calendar import epoch
from whenthen.diagnostics import EventError
from whenthen.runtime.activation import Activator
from whenthen.runtime.catalog import Catalog
from whenthen.runtime.context import Context, Queued
from whenthen.runtime.dispatch import Dispatcher
from whenthen.runtime.events import lookup_trigger, validate_event
from whenthen.runtime.scheduler import Scheduler
from whenthen.runtime.store import StoreUnavailable


class Worker:
    """One engine's worker loop: each claim in its own transaction, under a fresh fan-out budget."""

    def __init__(self, ctx: Context, catalog: Catalog, activator: Activator, dispatcher: Dispatcher,
                 scheduler: Scheduler):
        self.ctx = ctx
        self.store = ctx.store
        self.catalog = catalog
        self.activator = activator
        self.dispatcher = dispatcher
        self.scheduler = scheduler

    def run_due(self, limit: int | None = None) -> int:
        """Resume every run whose wait is due now (by deadline, then creation); returns how many."""
        ctx, store = self.ctx, self.store
        done = 0
        while (limit is None or done < limit) and store.has_due_run(epoch(ctx.clock.now()), time.time()):
            self.catalog.refresh()
            with store.batch():
                run = store.claim_next_due_run(epoch(ctx.clock.now()), time.time(), ctx.owner, ctx.lease_expiry())
                if run is None:
                    break
                ctx.budget = ctx.new_budget()
                self.activator.resume_claimed(run)
                self.dispatcher.drain()
            done += 1
        return done

    def process_pending(self, limit: int | None = None) -> int:
        """Dispatch events that were recorded but not processed (enqueued, emitted by another
        process, or left by a worker that died); returns how many."""
        ctx, store = self.ctx, self.store
        count = 0
        while (limit is None or count < limit) and store.has_claimable_event(time.time()):
            self.catalog.refresh()
            with store.batch():
                row = store.claim_next_event(ctx.owner, time.time(), ctx.lease_expiry())
                if row is None:
                    break
                event_id, trigger, data, _at, depth = row
                try:
                    typed = validate_event(lookup_trigger(self.catalog.triggers, trigger), json.loads(data))
                except (EventError, ValueError) as exc:
                    store.reject_event(event_id, str(exc))
                    continue
                self.dispatcher.dispatch(Queued(event_id, trigger, typed, depth))
            count += 1
        return count

    def work(self, once: bool = False, idle: float = 0.5, stop: Callable[[], bool] | None = None) -> int:
        """The worker loop: pending events and due runs, until `stop()` (or one pass with `once`)."""
        total, backoff = 0, 0.0
        while True:
            # small slices, so a stop request is honoured between them
            try:
                n = self.process_pending(limit=100) + self.run_due(limit=100) + self.scheduler.fire()
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
