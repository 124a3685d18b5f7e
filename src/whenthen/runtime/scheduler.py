"""Schedules: which slot of each active schedule rule is due, claimed once across workers."""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from typing import Any

from whenthen import calendar, values
from whenthen.calendar import SCHEDULE_TRIGGER, epoch, from_epoch
from whenthen.runtime.catalog import Catalog
from whenthen.runtime.context import Context, Queued
from whenthen.runtime.dispatch import Dispatcher
from whenthen.values import format_datetime

_log = logging.getLogger("whenthen.engine")


class Scheduler:
    """Schedule slots of the active schedule rules; each slot claimed once however many workers run."""

    def __init__(self, ctx: Context, catalog: Catalog, dispatcher: Dispatcher):
        self.ctx = ctx
        self.catalog = catalog
        self.dispatcher = dispatcher

    def next_slot(self) -> dt.datetime | None:
        """The earliest slot not yet fired of any active schedule rule (simulate and the REPL step
        the clock to it); None when no schedule will fire."""
        last = self.slots()
        found = []
        for loaded in self.catalog.active.get(SCHEDULE_TRIGGER, ()):
            slot = calendar.next_fire(loaded.code.schedule or {}, loaded.code.timezone, from_epoch(last[loaded.name]))
            if slot is not None:
                found.append(slot)
        return min(found, default=None)

    def fire(self, until: dt.datetime | None = None) -> int:
        """Fire each active schedule rule's latest slot in (its last fired slot, `until`] (default:
        now), once: a worker that was down catches up with one event per rule, never a burst
        (docs/time.md). The event's `at` is the slot. Returns how many fired."""
        ctx = self.ctx
        now = ctx.clock.now()
        until = until or now
        last = self.slots()
        fired = 0
        for loaded in list(self.catalog.active.get(SCHEDULE_TRIGGER, ())):
            code = loaded.code
            slot = calendar.latest_fire(code.schedule or {}, code.timezone, from_epoch(last[loaded.name]), until)
            if slot is None:
                continue
            data: dict[str, Any] = {"at": slot}
            event_id = ctx.store.claim_schedule_slot(loaded.name, epoch(slot), SCHEDULE_TRIGGER,
                                                     json.dumps(values.to_json(data), ensure_ascii=False, separators=(",", ":")), format_datetime(now), ctx.owner,
                                                     time.time() + ctx.lease_seconds)
            if event_id is None:  # another worker fired it
                continue
            self.dispatcher.dispatch(Queued(event_id, SCHEDULE_TRIGGER, data, 0))
            fired += 1
        return fired

    def slots(self) -> dict[str, float]:
        """The last slot of each active schedule rule; one that has none yet (it became a schedule
        rule while active) is owed nothing before now."""
        self.catalog.refresh()
        store = self.ctx.store
        last = store.schedule_slots()
        now = epoch(self.ctx.clock.now())
        for loaded in self.catalog.active.get(SCHEDULE_TRIGGER, ()):
            if loaded.name not in last:
                store.arm_schedule(loaded.name, now)
                last[loaded.name] = now
            elif last[loaded.name] > now:
                # A slot after the clock was recorded by a clock set ahead (`worker --now 2036-…`);
                # kept, it would silence the schedule until then. Go on from the clock.
                if store.rewind_schedule(loaded.name, now):
                    _log.warning("schedule of rule '%s': its last fired slot %s is after the clock (%s), "
                                 "recorded by a clock set ahead (--now?); going on from the clock",
                                 loaded.name, format_datetime(from_epoch(last[loaded.name])),
                                 format_datetime(from_epoch(now)))
                last[loaded.name] = now
        return last
